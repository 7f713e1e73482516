"""The Bayesian criterion: GSM posterior over channel gates, budgeted Bayes decision."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyro
import torch

from ..bayes.carry import CarriedPrior
from ..bayes.decision import bayes_decision, keep_probabilities
from ..decision import RoundBudget
from ..gates import ChannelGates
from ..bayes.inference import SVIConfig, draw_from_guide, fit_svi, sample_nuts
from ..bayes.network import GatedNetworkModel
from ..bayes.posterior import ChannelPosterior, hdi_contains, to_numpy, write_round_artifacts
from ..bayes.priors import ScalePrior
from ..bayes.priors.horseshoe import Horseshoe
from ..errors import ConfigError
from ..options import bind_options
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
        chains: independent fits (SVI from seeds ``seed, seed+1, ...``, or NUTS chains), ``draws``
            each, pooled for every decision; with two or more, R-hat across the fits says whether
            they agree (for SVI that diagnoses the optimisation, not a sampler's mixing).
        forgetting: ``rho`` of the carried prior (:mod:`bayesprune.bayes.carry`): after a cut the
            survivors' tempered posterior is the next round's prior; 0 refits the GSM every round.

    Iterative use (one object across rounds): :meth:`select` also predicts, from the same draws,
    which channels the *final* budget will prune (:mod:`bayesprune.tracking`) and cuts
    the channels most likely to be pruned by the end first: the round's kept set maximises the
    expected number of kept channels that survive the final round, ``sum P(c kept at the final
    budget)``, under this round's budget (ties: keep probability at this round's budget, then
    mean effect). This thresholds the predicted pruning probability at the level that meets
    the round's budget. :meth:`reparameterization` returns the gates' posterior means, which the
    engine folds into the weights before the cut (the network's function at the posterior mean).
    """

    name = "bayes-svi"
    description = "frozen-network SVI posterior over channel gates (the pre-v2 bayes); keep probabilities"
    source = "Louizos et al. 2017, NeurIPS, sec. 3-4; Carvalho et al. 2010"
    needs_data = True
    set_by_flags = ("prior", "svi", "draws", "train_weights", "seed", "progress", "inference",
                    "forgetting", "chains")  # set by --prior, --svi-steps, --posterior-draws, ...
    own_widths = True  # with --allocation global its draws rank channels across layers

    def __init__(self, prior: ScalePrior | None = None,
                 svi: SVIConfig | None = None, draws: int = 200, train_weights: bool = False,
                 seed: int = 0, progress: bool = False, inference: str = "svi", warmup: int = 100,
                 forgetting: float = 0.5, chains: int = 1):
        if inference not in ("svi", "nuts"):
            raise ConfigError(f"unknown inference {inference!r}; choose svi or nuts")
        self.inference, self.warmup, self.seed = inference, warmup, seed
        self.prior = prior if prior is not None else Horseshoe(tau0=0.1)
        if not 0.0 <= forgetting <= 1.0:
            raise ConfigError(f"--forgetting must be in [0, 1] (0: refit every round), got {forgetting}")
        self.forgetting = forgetting
        if chains < 1:
            raise ConfigError(f"--chains must be >= 1, got {chains}")
        self.chains = chains
        self.carried: CarriedPrior | None = None  # set by after_cut when forgetting > 0
        self.gate_loc = self.gate_scale = None  # Gaussian posterior of the gates, per channel
        self.keep_final: np.ndarray | None = None
        self.svi = svi or SVIConfig(seed=seed)
        self.draws, self.train_weights, self.progress = draws, train_weights, progress
        self.gates: ChannelGates | None = None
        self.gate_draws: np.ndarray | None = None
        self.hyper_draws: dict[str, np.ndarray] = {}
        self.elbo: list[list[float]] = []  # one ELBO trace per chain (empty for NUTS)
        self.posterior: ChannelPosterior | None = None

    @classmethod
    def from_config(cls, config) -> "BayesGSM":
        from ..bayes.priors import prior_class

        return cls(prior=prior_class(config.prior).from_config(config, tau0=0.1),
                   svi=SVIConfig(steps=config.svi_steps, lr=config.svi_lr, seed=config.seed),
                   draws=config.posterior_draws, progress=config.progress, inference=config.inference,
                   train_weights=config.svi_train_weights, forgetting=config.forgetting, chains=config.chains,
                   seed=config.seed, **bind_options(cls, config.criterion_options, "--criterion-option",
                                                    reserved=cls.set_by_flags))

    def check(self, data) -> None:
        if self.inference == "nuts" and len(data.train_y) > NUTS_MAX_EXAMPLES:
            raise ConfigError(f"--inference nuts evaluates the full training set at every leapfrog step; "
                                  f"{len(data.train_y)} examples is too many (at most "
                                  f"{NUTS_MAX_EXAMPLES}): add --train-subset {NUTS_MAX_EXAMPLES} or use "
                                  "--inference svi")

    def prepare(self, model, graph, calibration: Calibration) -> None:
        self.gates = ChannelGates(graph)
        nuts = self.inference == "nuts"
        self.check(calibration.data)
        prior = self.carried if self.carried is not None else self.prior
        gated = GatedNetworkModel(model, self.gates, prior, calibration.data, calibration.device,
                                  None if nuts else calibration.batch_size, self.train_weights and not nuts)
        was_training = model.training
        model.eval()
        frozen = [p for p in model.parameters() if p.requires_grad] if not gated.train_weights else []
        for parameter in frozen:  # fixed weights: no gradients to compute (about a third of SVI's time)
            parameter.requires_grad_(False)
        try:
            with self.gates:
                fits = [self._fit(gated, chain) for chain in range(self.chains)]
        finally:
            self.gates.values = None
            model.train(was_training)
            for parameter in frozen:
                parameter.requires_grad_(True)
        self.elbo = [elbo for _, elbo, _ in fits]
        # pooled draws (chain-major); arviz gets them back as (chains, draws) in ChannelPosterior
        pooled = {name: np.concatenate([draws[name] for draws, _, _ in fits]) for name in fits[0][0]}
        self.gate_draws = pooled.pop("s")
        self.hyper_draws = pooled
        if self.chains == 1 and not nuts:  # the guide's own Gaussian
            self.gate_loc, self.gate_scale = fits[0][2]
        else:  # moment-matched Gaussian of the pooled draws
            self.gate_loc, self.gate_scale = self.gate_draws.mean(0), self.gate_draws.std(0, ddof=1)
        self.posterior = None
        self.keep_final = None
        self.folded = False  # set when the engine takes the means to fold (reparameterization)

    def _fit(self, gated: GatedNetworkModel, chain: int):
        """One independent fit: (draws, ELBO trace, guide's (loc, scale) or None)."""
        pyro.clear_param_store()
        seed = (self.seed if self.inference == "nuts" else self.svi.seed) + chain
        desc = f"svi chain {chain + 1}/{self.chains}" if self.chains > 1 else "svi"
        if self.inference == "nuts":
            return to_numpy(sample_nuts(gated.model, self.draws, self.warmup, seed, self.progress)), [], None
        elbo = fit_svi(gated.model, gated.guide, replace(self.svi, seed=seed), progress=self.progress, desc=desc)
        draws = to_numpy(draw_from_guide(gated.guide, self.draws))
        guide = (pyro.param("s_loc").detach().cpu().numpy().copy(), pyro.param("s_scale").detach().cpu().numpy().copy())
        return draws, elbo, guide

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
        index = self.gates.graph.index_of(root)
        effect = self.effect_draws()[:, self.gates.group_slice(index)].mean(0)
        return torch.as_tensor(effect[list(group[0].root_idxs)], dtype=torch.float64)

    def select(self, graph, cost_model, budget: RoundBudget):
        """Budgeted Bayes decision: global and MAC-aware, or per layer (``allocation="uniform"``)."""
        self._require_prepared()
        group_of_channel = self.gates.layer_of_channel.numpy()
        selector = budget.selector(cost_model, group_of_channel)
        effect = self.effect_draws()
        kept_draws, keep_probability, cut = keep_probabilities(effect, selector)
        self.keep_final = keep_probability
        if budget.final_target < budget.target:
            final = budget.selector(cost_model, group_of_channel, budget.final_target)
            self.keep_final = keep_probabilities(effect, final)[1]
        decision = bayes_decision(keep_probability, effect.mean(0), selector, self.keep_final)
        ratio = effect / selector.channel_cost
        uncertain = hdi_contains(ratio, cut)
        names = [g.name for g in graph.groups]
        local = np.concatenate([np.arange(g.size) for g in graph.groups])
        self.posterior = ChannelPosterior([names[g] for g in group_of_channel], local, self.gate_draws,
                                          self.hyper_draws, keep_probability, kept_draws, decision,
                                          uncertain, self.elbo, self._inference_label(),
                                          1.0 - self.keep_final, self.chains)
        return {name: [int(c) for c in local[(group_of_channel == gi) & ~decision]]
                for gi, name in enumerate(names)}

    def _inference_label(self) -> str:
        if self.inference == "nuts":
            return f"NUTS, {self.chains} independent chain(s) of {self.draws} draws"
        return (f"SVI, {self.chains} independent fit(s) from different seeds, "
                f"{self.draws} mean-field guide draws each")

    def reparameterization(self) -> torch.Tensor | None:
        """The gates' posterior means, for the engine to fold in before the cut (the carried
        prior then lives in relative coordinates, see :mod:`bayesprune.bayes.carry`)."""
        self._require_prepared()
        self.folded = True
        return torch.as_tensor(self.gate_loc, dtype=torch.float32)

    def prune_probability(self) -> np.ndarray | None:
        return None if self.keep_final is None else 1.0 - self.keep_final

    def after_cut(self, removal) -> None:
        """Carry the survivors' tempered posterior into the next round (if ``forgetting > 0``)."""
        kept = self.posterior.decision
        self.carried = (CarriedPrior.from_posterior(self.gate_loc[kept], self.gate_scale[kept], self.forgetting,
                                                    folded=self.folded)
                        if self.forgetting > 0 else None)

    def state_dict(self) -> dict:
        """The carried prior (the only state that crosses rounds; each round refits the rest)."""
        return {"carried": None if self.carried is None else self.carried.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.carried = None if state["carried"] is None else CarriedPrior.from_state_dict(state["carried"])

    def write_artifacts(self, directory: Path, round_index: int) -> list[str]:
        return write_round_artifacts(self.posterior, directory, round_index)

    def keep_probability(self) -> np.ndarray | None:
        return None if self.posterior is None else self.posterior.keep_probability

    def round_record(self) -> dict:
        if self.posterior is None:
            return {}
        return {"layers": self.posterior.per_layer(), "uncertain_channels": int(self.posterior.uncertain.sum())}


BayesImportance = BayesGSM  # the name under which Torch-Pruning users look for it
