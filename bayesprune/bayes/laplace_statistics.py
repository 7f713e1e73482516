"""What the default ``bayes`` criterion (:class:`~bayesprune.criteria.bayes_laplace.BayesLaplace`)
measures on a network before it decides: the Laplace likelihood of every channel's gate (the
diagonal empirical Fisher, MacKay 1992; :mod:`bayesprune.fisher`), the weight-norm scale of the
prior (Louizos et al. 2017, sec. 3.1, eq. 8: the GSM sits on ``z = s r``, ``r`` the channel's
filter norm over its layer's RMS), the closed-form GSM posterior and its draws
(:mod:`bayesprune.bayes.gsm_quadrature`; the same from each half of the calibration batches for the
agreement figures), the order inside each layer (``within``) and, with ``compensated``, the share
of each layer's cut that the least-squares refit leaves. The criterion's docstring says why each is
there; this module only gathers them, once per round (:meth:`LaplaceStatistics.prepare`)."""
from __future__ import annotations

import numpy as np

from ..criteria.base import Calibration
from ..criteria.magnitude import L2Norm
from ..fisher import gate_fisher, order_ranks
from ..gates import ChannelGates
from .cuts import layer_orders
from .gsm_quadrature import GSMPosterior
from .pricing import CutPricing

FISHER_FLOOR = 1e-12  # a channel the data never moved: its likelihood is flat, not undefined


class LaplaceStatistics:
    """The per-round statistics of :class:`~bayesprune.criteria.bayes_laplace.BayesLaplace` (a base
    class: it reads the criterion's ``within``, ``prior``, ``grid``, ``draws``, ``chains``, ``seed``,
    ``weight_norm_prior``, ``interactions``, ``cross_layer``, ``compensated`` and ``carried``)."""

    def prepare(self, model, graph, calibration: Calibration) -> None:
        """Gather this round's statistics of ``model`` (its :class:`ChannelGraph` ``graph``) from
        ``calibration``'s batches, fit the posterior (the carried one as its prior) and draw from it."""
        self.gates = ChannelGates(graph)
        self.group_of_channel = self.gates.layer_of_channel.numpy()
        if self.within.needs_data:
            self.within.prepare(model, graph, calibration)
        within = self.within.score(graph)
        self.within_score = np.concatenate([within[g.name].double().numpy() for g in graph.groups])
        norms = L2Norm().score(graph)
        self.relative_norm = np.concatenate([_relative(norms[g.name].double().numpy()) for g in graph.groups])
        if not self.weight_norm_prior:  # ablation: the prior sees every channel at the same scale
            self.relative_norm = np.ones_like(self.relative_norm)
        fisher = gate_fisher(model, self.gates, calibration.batches(), calibration.collective)
        self.examples = len(calibration.data.train_y)
        self.fisher, self.fisher_examples = fisher.fisher, fisher.examples
        self.orders = layer_orders(self.group_of_channel, self.within_score)
        self.rank = order_ranks(self.orders, len(self.within_score))  # position in its layer's order
        # this network's input statistics, once gathered: by ``within`` (obs gathers the lsq ones), the
        # shares or the width check, whichever comes first; the others read them
        self.gathered = self._within_statistics(model)
        self.shares = self._compensated_shares(model, graph, calibration) if self.compensated else None
        self.pricing, *self.half_pricing = (
            CutPricing.of(fisher, self.orders, self.examples, half, self.interactions, self.cross_layer, self.shares)
            for half in (None, 0, 1))
        local, tau = (None, None) if self.carried is None else (
            np.concatenate([np.asarray(self.carried["local"][g.name], dtype=np.float64).reshape(g.size, -1)
                            for g in graph.groups]), np.asarray(self.carried["tau"]))
        self.gsm = self._fit(self.fisher, local, tau)
        rng = np.random.default_rng([self.seed, self._round])
        draws = [self.gsm.draw(self.draws, np.random.default_rng(rng.integers(2 ** 32))) for _ in range(self.chains)]
        self.z_draws = np.concatenate([d["z"] for d in draws])
        self.hyper_draws = {"tau": np.concatenate([d["tau"] for d in draws]),
                            "lambda": np.concatenate([d["lambda"] for d in draws])}
        self.gate_draws = self.z_draws / self.relative_norm
        self.half_gate_draws = [self._fit(f, local, tau).draw(self.draws, np.random.default_rng(rng.integers(2 ** 32)))
                                ["z"] / self.relative_norm for f in fisher.halves]
        self.posterior, self.keep_final, self.agreement = None, None, None
        self.calibration = calibration  # the width check snapshots the network only when select runs it

    def _within_statistics(self, model):
        """The ``lsq`` statistics ``within`` gathered on this network with this seed (obs), or None."""
        gathered = self.within.input_statistics()
        return gathered if gathered is not None and gathered.for_model(model, "lsq", self.seed) else None

    def _compensated_shares(self, model, graph, calibration) -> list[np.ndarray]:
        """Per layer, the share of a cut of its first k channels that the ``lsq`` refit leaves."""
        from ..surgery.compensate import NamedStatistics, input_statistics
        from ..surgery.residual import RIDGE, compensated_share

        statistics = None if self.gathered is None else self.gathered.for_model(model, "lsq", self.seed)
        within_shares = self.within.refit_shares()
        # obs's greedy pass holds them (exact, no solves) for its statistics of this network and its
        # order, which is ``self.orders`` (built from its scores); only its ridge may differ
        if statistics is not None and within_shares is not None and getattr(self.within, "ridge", None) == RIDGE:
            return [within_shares[g.name] for g in graph.groups]
        if statistics is None:
            statistics = input_statistics(graph, calibration.batches(), "lsq", seed=self.seed)
            self.gathered = NamedStatistics.of(model, statistics, "lsq", self.seed)
        starts = [self.gates.group_slice(index).start for index in range(len(graph.groups))]
        local = {g.name: order - start for g, order, start in zip(graph.groups, self.orders, starts)}
        shares = compensated_share(graph, local, statistics, RIDGE)
        return [shares[g.name] for g in graph.groups]

    def _fit(self, fisher: np.ndarray, local, tau) -> GSMPosterior:
        precision = self.examples * np.maximum(fisher, FISHER_FLOOR)  # of s: N F
        return GSMPosterior.fit(self.relative_norm, self.relative_norm ** 2 / precision, self.prior, self.grid,
                                local, tau)

    def _require_prepared(self) -> None:
        if getattr(self, "gate_draws", None) is None:
            raise RuntimeError("BayesLaplace.prepare(model, graph, calibration) must run before scoring")

    def effect_draws(self) -> np.ndarray:
        """Nats of log-likelihood lost by removing each channel alone, per draw: ``N F_c s_c^2 / 2``."""
        self._require_prepared()
        return 0.5 * self.examples * self.fisher * self.gate_draws ** 2


def _relative(norms: np.ndarray) -> np.ndarray:
    """Norms over their layer's RMS (a dead layer of all-zero filters stays at a tiny scale)."""
    rms = np.sqrt(np.mean(norms ** 2))
    return np.maximum(norms / rms if rms > 0 else norms, 1e-6)
