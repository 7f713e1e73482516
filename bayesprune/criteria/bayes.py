"""The Bayesian criterion: GSM posterior over channel gates, budgeted Bayes decision."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyro
import torch

from ..bayes.decision import BudgetedSelector, bayes_decision, keep_probabilities
from ..bayes.gates import ChannelGates
from ..bayes.inference import SVIConfig, draw_from_guide, fit_svi, sample_nuts
from ..bayes.network import GatedNetworkModel
from ..bayes.posterior import ChannelPosterior, inference_data_from, to_numpy
from ..bayes.priors import make_prior
from ..errors import BayesPruneError
from ..runs import atomic_path, atomic_write_text
from .base import Calibration, Criterion


NUTS_MAX_EXAMPLES = 2000


class BayesGSM(Criterion):
    """Gaussian-scale-mixture posterior over channel gates (Louizos et al. 2017, "Bayesian
    Compression for Deep Learning", sec. 3-4, group horseshoe), fitted by SVI with Pyro; the cut
    is the budgeted Bayes decision of :mod:`bayesprune.bayes.decision`.

    Simplifications against Louizos et al.: the gates multiply whole channels after BatchNorm
    (not the weights' scales), the weights stay at their trained point estimate unless
    ``train_weights`` (see :mod:`bayesprune.bayes.network`), and the guide is mean-field.

    As a Torch-Pruning ``Importance`` (``__call__``) it returns the posterior mean of the gate's
    squared signal-to-noise ratio ``(s_c / sigma_c)^2`` for the group's channels, after
    :meth:`prepare` has run.

    Params:
        prior: ``horseshoe`` | ``regularized-horseshoe`` | ``normal-jeffreys``.
        per_layer: add a per-layer scale between the global and local ones.
        tau0: scale of the global half-Cauchy (horseshoes).
        svi: steps, learning rate and KL warm-up of SVI.
        draws: posterior draws for keep probabilities and summaries.
        train_weights: update the network's weights as MAP point estimates during SVI.
        inference: ``svi`` (default) or ``nuts``: full-data NUTS, for small models and data only;
            with NUTS the weights stay fixed and ``draws`` are its samples after ``warmup`` steps.
    """

    name = "bayes"
    description = "horseshoe-family posterior over channel gates; keep probabilities under the budget"
    source = "Louizos et al. 2017, NeurIPS, sec. 3-4; Carvalho et al. 2010"
    needs_data = True

    def __init__(self, prior: str = "horseshoe", per_layer: bool = False, tau0: float = 0.1,
                 svi: SVIConfig | None = None, draws: int = 200, train_weights: bool = False,
                 seed: int = 0, progress: bool = False, inference: str = "svi", warmup: int = 100):
        if inference not in ("svi", "nuts"):
            raise BayesPruneError(f"unknown inference {inference!r}; choose svi or nuts")
        self.inference, self.warmup, self.seed = inference, warmup, seed
        prior_kwargs = {} if prior == "normal-jeffreys" else {"tau0": tau0}
        self.prior = make_prior(prior, per_layer=per_layer, **prior_kwargs)
        self.svi = svi or SVIConfig(seed=seed)
        self.draws, self.train_weights, self.progress = draws, train_weights, progress
        self.gates: ChannelGates | None = None
        self.gate_draws: np.ndarray | None = None
        self.hyper_draws: dict[str, np.ndarray] = {}
        self.elbo: list[float] = []
        self.posterior: ChannelPosterior | None = None

    def prepare(self, model, graph, calibration: Calibration) -> None:
        pyro.clear_param_store()
        self.gates = ChannelGates(graph)
        nuts = self.inference == "nuts"
        if nuts and len(calibration.data.train_y) > NUTS_MAX_EXAMPLES:
            raise BayesPruneError(f"--inference nuts evaluates the full training set at every leapfrog step; "
                                  f"{len(calibration.data.train_y)} examples is too many (at most "
                                  f"{NUTS_MAX_EXAMPLES}): add --train-subset {NUTS_MAX_EXAMPLES} or use --inference svi")
        gated = GatedNetworkModel(model, self.gates, self.prior, calibration.data, calibration.device,
                                  None if nuts else calibration.batch_size, self.train_weights and not nuts)
        was_training = model.training
        model.eval()
        try:
            with self.gates:
                if nuts:
                    self.elbo = []
                    draws = to_numpy(sample_nuts(gated.model, self.draws, self.warmup, self.seed, self.progress))
                else:
                    self.elbo = fit_svi(gated.model, gated.guide, self.svi, progress=self.progress, desc="svi")
                    draws = to_numpy(draw_from_guide(gated.guide, self.draws))
        finally:
            self.gates.values = None
            model.train(was_training)
        self.gate_draws = draws.pop("s")
        self.hyper_draws = draws
        self.posterior = None

    def _require_prepared(self) -> None:
        if self.gate_draws is None:
            raise RuntimeError("BayesGSM.prepare(model, graph, calibration) must run before scoring")

    def effect_draws(self) -> np.ndarray:
        """Per-draw squared signal-to-noise ratio of every gate (see :mod:`bayesprune.bayes.decision`)."""
        self._require_prepared()
        sd = self.gate_draws.std(0, ddof=1)
        return (self.gate_draws / np.maximum(sd, 1e-12)) ** 2

    def __call__(self, group) -> torch.Tensor:
        """Posterior mean effect of the group's channels; ``group`` may come from another
        DependencyGraph of the same network (e.g. Torch-Pruning's own pruner), so it is matched
        by the layers it contains, not by object identity."""
        root = group[0].dep.target.module
        index = self.gates.group_of_module(root)
        effect = self.effect_draws()[:, self.gates.group_slice(index)].mean(0)
        return torch.as_tensor(effect[list(group[0].root_idxs)], dtype=torch.float64)

    def select(self, graph, cost_model, target, kind, allocation, max_fraction):
        """Budgeted Bayes decision: global and MAC-aware, or per layer (``allocation="uniform"``)."""
        self._require_prepared()
        group_of_channel = self.gates.layer_of_channel.numpy()
        selector = BudgetedSelector(cost_model, group_of_channel, target, kind, max_fraction, allocation)
        effect = self.effect_draws()
        kept_draws, keep_probability, cut = keep_probabilities(effect, selector)
        decision = bayes_decision(keep_probability, effect.mean(0), selector)
        ratio = effect / selector.channel_cost
        uncertain = _hdi_contains(ratio, cut)
        names = [g.name for g in graph.groups]
        local = np.concatenate([np.arange(g.size) for g in graph.groups])
        self.posterior = ChannelPosterior([names[g] for g in group_of_channel], local, self.gate_draws,
                                          self.hyper_draws, keep_probability, kept_draws, decision,
                                          uncertain, self.elbo,
                                          "NUTS (one chain)" if self.inference == "nuts" else "SVI (mean-field guide draws)")
        return {name: [int(c) for c in local[(group_of_channel == gi) & ~decision]]
                for gi, name in enumerate(names)}

    def write_artifacts(self, directory: Path, round_index: int) -> list[str]:
        if self.posterior is None:
            return []
        netcdf = f"posterior_round{round_index}.nc"
        with atomic_path(Path(directory) / netcdf) as tmp:
            self.posterior.inference_data().to_netcdf(str(tmp))
        atomic_write_text(Path(directory) / "keep_probability.csv", self.posterior.keep_probability_csv())
        return [netcdf, "keep_probability.csv"]


def _hdi_contains(samples: np.ndarray, level: float, hdi_prob: float = 0.9) -> np.ndarray:
    import arviz as az

    hdi = az.hdi(inference_data_from({"x": samples[None]}), hdi_prob=hdi_prob)["x"].values
    return (hdi[:, 0] <= level) & (level <= hdi[:, 1])


BayesImportance = BayesGSM  # the name under which Torch-Pruning users look for it
