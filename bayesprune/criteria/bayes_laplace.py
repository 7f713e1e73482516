"""The default Bayesian criterion: a closed-form GSM posterior over channel scales on top of a
Laplace (diagonal Fisher) likelihood, whose global scale is shared by every layer, and layer
widths chosen from posterior draws of the expected loss each cut costs per MAC it saves. What it
measures before deciding (Fisher, norms, posterior draws, compensated shares) is gathered by its base
class :class:`~bayesprune.bayes.laplace_statistics.LaplaceStatistics`."""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from pathlib import Path

import numpy as np
import torch

from ..bayes.agreement import posterior_agreement
from ..bayes.cuts import PosteriorCuts, draw_cuts, posterior_cuts
from ..decision import RoundBudget
from ..decision.selector import BudgetedSelector
from ..bayes.gsm_quadrature import ScaleGrid
from ..bayes.pricing import CutPricing
from ..bayes.posterior import ChannelPosterior, hdi_contains, write_round_artifacts
from ..bayes.laplace_statistics import LaplaceStatistics
from ..bayes.width_check import Z, WidthCheck, prediction_budget
from ..bayes.priors import Horseshoe, ScalePrior
from ..errors import BayesPruneError, ConfigError
from ..options import bind_options
from .base import Criterion
from .magnitude import L2Norm


class BayesLaplace(LaplaceStatistics, Criterion):
    """Horseshoe-family posterior over every channel's effective scale, in one pass, no SVI.

    **Likelihood** (Laplace approximation, MacKay 1992): a gate ``s_c`` multiplies channel c
    after its BatchNorm; around the trained network (``s = 1``) the log-likelihood of the N
    training examples is ``-N F_c (s_c - 1)^2 / 2`` per gate, ``F_c`` the diagonal empirical
    Fisher from per-example gradients over the calibration batches (:mod:`bayesprune.fisher`).

    **Prior** where Bayesian Compression puts it (Louizos et al. 2017, sec. 3.1, eq. 8: a GSM on
    the scale of each filter's weight group): the channel's effective scale is
    ``z_c = s_c r_c``, ``r_c`` the L2 norm of its filters (concatenated over a coupled group)
    relative to its layer's RMS norm, so every layer's channels are on one scale and the prior's
    global scale ``tau``, shared by all layers, makes them comparable (global group sparsity;
    Lu 2023 thesis, contribution 2). In ``z``: ``zhat_c = r_c``, noise variance
    ``r_c^2 / (N F_c)``; ``z_c ~ N(0, sigma^2(tau, lambda_c))`` with the prior's scales. The
    posterior is computed exactly on a grid of scales (:mod:`bayesprune.bayes.gsm_quadrature`):
    ``tau`` and every ``lambda_c`` are integrated, not optimised.

    **Evidence per channel**: in posterior draw d, removing a layer's first k channels ``S`` costs
    ``N s_S^T F_SS s_S / 2`` nats of log-likelihood (the quadratic loss of moving their gates from
    ``s^d`` to 0, ``F_SS`` the layer's empirical Fisher block: channels removed together interact;
    with ``interactions=False`` its diagonal, ``e_c = N F_c (s_c^d)^2 / 2`` per channel), and each
    channel saves ``cost_c`` MACs (or params; the cost model's marginal cost of one channel of its
    group). Which channels a layer gives up is fixed by ``within`` (a run's default: ``obs``, the
    channels the least-squares refit repairs best first; after fine-tuning the order inside a layer
    was measured to matter little, without it by 14-26 points at 20% of the MACs); the
    posterior decides **how many**: in each draw, channels are removed in increasing order
    of what each adds to its layer's cut per unit cost (:func:`~bayesprune.fisher.cut_priority`;
    a channel's priority is at least that of the channels its layer gives up before it), each layer
    in its ``within`` order, under the per-layer caps, until the budget is met. Keep
    probabilities (the share of draws whose cut keeps a channel), the final-round prediction (the
    same draws cut to the final budget) and the uncertain channels follow from these per-draw cuts
    as for ``bayes-svi``. **The decision** minimises the posterior expected loss of the cut under
    the budget: channels go in increasing
    posterior-mean priority (the greedy rule of the fractional knapsack), each layer in its order.
    (Maximising the expected number of channels that agree with the draws' cuts, ``bayes-svi``'s
    utility, prefers dropping one expensive channel that every draw keeps over many cheap ones
    that no draw keeps, and emptied ResNet-20's residual stage here.) Because the removal order
    does not depend on the budget, this round's cut is a prefix of the cut the same posterior
    makes at the final budget. With ``allocation="uniform"`` (or a
    learned allocation) the widths are fixed and the posterior is reported but does not decide.

    **Across rounds** (``forgetting`` rho > 0): the tempered posterior ``p(tau, lambda | data)^rho``
    of the survivors is the next round's prior on the grid.

    Simplifications: the likelihood is quadratic in each gate separately (a diagonal Fisher:
    no interactions between channels); the network's weights are not integrated over; the Fisher
    is estimated from the calibration batches only, and its sampling error is not part of the
    posterior (the split-half figures of :mod:`bayesprune.bayes.agreement` show its size).
    ``chains`` are independent sets of exact draws (different seeds) of the one posterior.

    Params:
        prior: a :class:`~bayesprune.bayes.priors.ScalePrior` (default horseshoe, ``tau0=1``).
        within: the criterion that orders channels inside a layer (constructed directly: :class:`L2Norm`;
            a run's default is ``--within obs``, :class:`~bayesprune.criteria.obs.OptimalBrainSurgeon`).
        draws: posterior draws per chain. chains: independent sets of draws.
        forgetting: rho of the carried posterior (0: the prior is refitted every round).
        interactions: price a layer's cut with its full empirical Fisher block (default: channels
            removed together interact); False: its diagonal only, which let a cheap layer be cut
            to a sliver in one round (an ablation).
        weight_norm_prior: put the prior on ``z = s r`` (default); False: on the gate ``s`` alone
            (``r = 1``, an ablation: the Fisher is then the only evidence about how many channels go).
        fold_means: fold the gates' posterior means into the weights before the cut
            (``--reparameterize`` then also rescales the kept channels); off by default, since the
            trained network is the likelihood's mode.
        cross_layer: price each draw's cut with the empirical Fisher of *all* gates, so that
            channels of different layers interact too (:func:`~bayesprune.fisher.cross_layer_priority`:
            a greedy cut, one step per channel; ``analysis/post_training_widths.py`` measures it
            without fine-tuning); off by default (layers add up). Needs ``interactions``.
        check_widths: make the cut at the run's cap, at tighter caps and with uniform widths, and
            keep the run's own unless another's masked, reparameterized network has a higher
            log-likelihood on held-out training images beyond their sampling noise
            (:mod:`bayesprune.bayes.width_check`: the quadratic model is local). On by default;
            only when the posterior sets the widths (``--allocation global``). Measured on
            ResNet-20 (``analysis/bayes_v2.py``): no fine-tuning, 3 cuts to 20% with ``lsq``, 55%
            against 31% without it; after fine-tuning it ties or helps (see ``analysis/README.md``).
        check_z: standard errors of the paired held-out difference by which a candidate must beat the
            standing cut (the run's own widths, or with ``keep_chosen_rule`` an earlier cut's rule) to
            replace it. A run's default: 2 when it fine-tunes (the posterior's widths are kept on a tie:
            fine-tuning repairs what the held-out score sees), 0 with ``--epochs 0``, where the score is
            the kept network's own and ranks candidates as the test set does (held-out log-likelihood
            against test accuracy, Spearman 0.89 at 20% of the MACs; the tie rule's choice lost 0.56
            points of test accuracy at the final cut where the held-out best lost 0.10;
            ``analysis/width_check_reliability.py``).
        check_prediction: make the round's prediction of the final cut (what ``--anneal-target
            final``/``last`` dims) the way the width check makes a cut: at the run's rules, each
            tighter cap (compounded over the cuts left) and uniform widths, scored as masked networks
            on the held-out images; the run's rules stand unless another beats them beyond the noise.
            On by default where fine-tuning anneals toward the prediction (``final``, ``last``), off
            otherwise (the prediction then only feeds the report). Without it the prediction keeps
            the rule chosen for this cut (:func:`prediction_budget`). Needs ``check_widths`` (off
            without it, e.g. with ``cross_layer`` set-ups that skip the check).
        follow_prediction: with ``check_prediction``, make this cut under the rule the checked
            prediction of the final cut chose (:meth:`WidthCheck.checked_cut`) instead of this cut's
            own check's: the cuts compose, so the rule is chosen for where the run ends (a mild first
            cut under the posterior's own widths can pass its own check and still lead to final widths
            the final cut's check rejects). A run's default: on wherever ``check_prediction`` is.
            Measured on ResNet-20 (``analysis/bayes_v2.py``, 3 cuts, ``lsq``): without fine-tuning at
            20% of the MACs +1.45 points over not following (8 seeds); after fine-tuning a tie.
        adapt_batchnorm: score the width check's candidates (and its checked prediction) after
            re-estimating their BatchNorm statistics on the calibration batches (Li et al. 2020's
            adaptive BatchNorm; :mod:`bayesprune.bayes.width_check`), as fine-tuning's first steps
            would; a run's default: on wherever the run adapts after each cut (by default with ``--epochs
            0``, or under ``--adapt-batchnorm``), else off.
            Measured on ResNet-20 at 20% (``analysis/width_check_adaptation.py``, ``analysis/bayes_v2.py``):
            the check then picks a 30% cap where it picked uniform widths; after fine-tuning a tie.
        keep_chosen_rule: on a tie in a later cut's check, keep the rule (cap or uniform widths) an
            earlier cut chose instead of returning to the run's own
            (:attr:`~bayesprune.bayes.width_check.WidthCheck.keep_chosen_rule`). Off by default: without
            fine-tuning at 20% of the MACs +0.29 ± 0.93 points over not keeping it (8 seeds, a tie), and
            the held-out best (``check_z=0``) did better (``analysis/README.md``).
        reparameterize: the run's ``--reparameterize``, which the width check applies to its candidates.
        compensated: price each layer's cut after the run's least-squares compensation (``lsq`` only):
            the quadratic loss of removing a layer's first k channels is scaled by the share of its
            consumers' output error that the refit cannot repair
            (:func:`~bayesprune.surgery.residual.compensated_share`), so that channels the kept ones
            predict linearly are cheap. ``auto`` (the default): on with ``--reparameterize lsq`` (the run's
            default) unless ``cross_layer``; ``true`` refuses other set-ups; ``false``: off. Measured in
            ``analysis/bayes_v2.py`` (with ``--within obs``, the run's default).
    """

    name = "bayes"
    description = "closed-form horseshoe posterior (Laplace likelihood, shared global scale) sets layer widths"
    source = "Louizos et al. 2017, NeurIPS, sec. 3.1 eq. 8; Carvalho et al. 2010; MacKay 1992"
    needs_data = True
    set_by_flags = ("prior", "within", "draws", "chains", "seed", "forgetting", "weight_norm_prior",
                    "interactions", "grid", "reparameterize")  # set by --prior, --within, --posterior-draws, ...
    default_allocation = "global"  # the posterior sets the widths
    own_widths = True  # with --allocation global it decides the widths itself

    def __init__(self, prior: ScalePrior | None = None, within: Criterion | None = None, draws: int = 200,
                 chains: int = 2, seed: int = 0, forgetting: float = 0.5, fold_means: bool = False,
                 weight_norm_prior: bool = True, interactions: bool = True, grid: ScaleGrid | None = None,
                 cross_layer: bool = False, check_widths: bool = True, reparameterize: str = "mean",
                 compensated: bool | str = "auto", check_prediction: bool = False, follow_prediction: bool = False,
                 adapt_batchnorm: bool = False, keep_chosen_rule: bool = False, check_z: float = Z):
        if chains < 1:
            raise ConfigError(f"--chains must be >= 1, got {chains}")
        if draws < 2:
            raise ConfigError(f"--posterior-draws must be >= 2, got {draws}")
        if not 0.0 <= forgetting <= 1.0:
            raise ConfigError(f"--forgetting must be in [0, 1] (0: refit every round), got {forgetting}")
        self.prior = prior if prior is not None else Horseshoe(tau0=1.0)
        self.grid = grid or _grid(self.prior)
        self.within = within if within is not None else L2Norm()
        self.draws, self.chains, self.seed = draws, chains, seed
        self.forgetting, self.fold_means, self.weight_norm_prior = forgetting, fold_means, weight_norm_prior
        if cross_layer and not interactions:
            raise ConfigError("--criterion-option cross_layer=true prices channels of all layers together; "
                              "it cannot be combined with --no-interactions")
        self.interactions, self.cross_layer = interactions, cross_layer
        self.compensated = _compensation(compensated, reparameterize, cross_layer)
        self.shares: list[np.ndarray] | None = None  # with compensated: per layer, what the refit leaves
        if check_z < 0:
            raise ConfigError(f"--criterion-option check_z must be >= 0 (standard errors), got {check_z}")
        self.width_check = (WidthCheck(reparameterize, seed=seed, z=float(check_z), adapt_batchnorm=adapt_batchnorm,
                                       keep_chosen_rule=keep_chosen_rule) if check_widths else None)
        self.check_prediction = check_prediction and check_widths
        if follow_prediction and not self.check_prediction:
            raise ConfigError("--criterion-option follow_prediction=true follows the checked prediction of the final "
                              "cut: it needs check_prediction=true and the width check")
        self.follow_prediction = follow_prediction
        if adapt_batchnorm and not check_widths:
            raise ConfigError("--criterion-option adapt_batchnorm=true re-estimates BatchNorm statistics for the width "
                              "check's candidates: it needs check_widths=true")
        if keep_chosen_rule and not check_widths:
            raise ConfigError("--criterion-option keep_chosen_rule=true keeps the width check's earlier choice: it "
                              "needs check_widths=true")
        self.width_record: dict | None = None  # the width check's candidates and choice, this round
        self.gathered = None  # the width check's input statistics of this round's network, once it ran
        self.pricing: CutPricing | None = None  # prices each draw's cut (all calibration batches)
        self.half_pricing: list[CutPricing] = []  # the same from each half of them (agreement figures)
        self.carried: dict | None = None  # {"local": {group: survivors x K}, "tau": M} log weights after a cut
        self.posterior: ChannelPosterior | None = None
        self.agreement: dict | None = None
        self.keep_final: np.ndarray | None = None
        self._round = 0

    @classmethod
    def from_config(cls, config) -> "BayesLaplace":
        from ..bayes.priors import prior_class
        from . import criterion_class

        within = criterion_class(config.within, "--within")
        if within.own_widths or within.trains:  # bayes, bayes-svi, pfam, sep, search-train
            raise ConfigError(f"--within {config.within!r} cannot order channels inside a layer; use a scoring "
                              "criterion such as l2, l1, fpgm or taylor")
        prior = prior_class(config.prior).from_config(config, tau0=1.0)
        within = within.from_config(replace(config, criterion_options={}))  # bayes's options are not its
        options = bind_options(cls, config.criterion_options, "--criterion-option", reserved=cls.set_by_flags)
        # the prediction of the final cut is checked where fine-tuning anneals toward it
        options.setdefault("check_prediction", config.annealing and config.anneal_target != "current")
        # and every cut follows the rule it chose (measured with and without fine-tuning, analysis/README.md)
        options.setdefault("follow_prediction", bool(options["check_prediction"]) and options.get("check_widths", True))
        # the check scores the network the run goes on with: adapted after the cut under --adapt-batchnorm
        options.setdefault("adapt_batchnorm", config.adapts_batchnorm and options.get("check_widths", True))
        # without fine-tuning the held-out score is the kept network's own: take the best (check_z above)
        options.setdefault("check_z", Z if config.epochs > 0 else 0.0)
        return cls(prior=prior, within=within, draws=config.posterior_draws, chains=config.chains, seed=config.seed,
                   forgetting=config.forgetting, weight_norm_prior=config.weight_norm_prior,
                   interactions=config.interactions, reparameterize=config.reparameterize, **options)

    # statistics: the base class (bayesprune.bayes.laplace_statistics); Torch-Pruning's importance --
    def __call__(self, group) -> torch.Tensor:
        """Posterior mean loss of removing each of the group's channels (a Torch-Pruning importance)."""
        self._require_prepared()
        index = self.gates.graph.index_of(group[0].dep.target.module)
        effect = self.effect_draws()[:, self.gates.group_slice(index)].mean(0)
        return torch.as_tensor(effect[list(group[0].root_idxs)], dtype=torch.float64)

    # decision (bayesprune.bayes.cuts, bayesprune.bayes.pricing) ------------------------------
    def posterior_cuts(self, selector: BudgetedSelector) -> PosteriorCuts:
        """Every posterior draw's cut, and the decision, at ``selector``'s budget."""
        self._require_prepared()
        return posterior_cuts(self.pricing.priority(self.gate_draws, selector.channel_cost), selector, self.rank)

    def _cut_at(self, cost_model, budget: RoundBudget) -> tuple[BudgetedSelector, PosteriorCuts]:
        """The selector of ``budget`` over this network's channels, and the posterior's cuts under it."""
        selector = budget.selector(cost_model, self.group_of_channel)
        return selector, self.posterior_cuts(selector)

    def select(self, graph, cost_model, budget: RoundBudget):
        self._require_prepared()
        selector, cuts = self._cut_at(cost_model, budget)
        self.width_record = None
        chosen, final = budget, None
        if self.width_check is not None and budget.allocation == "global":
            chosen, selector, cuts, final, self.width_record = self._checked(graph, selector, cuts, budget, cost_model)
        kept_draws, keep_probability, decision, priority = (cuts.kept_draws, cuts.keep_probability, cuts.decision,
                                                            cuts.priority)
        self.keep_final = keep_probability
        if budget.final_target < budget.target:
            if final is not None:  # the width check chose the prediction among its candidates
                rule = self.width_record["prediction"]["chosen"]
            else:
                final, rule = prediction_budget(chosen, budget, cost_model)
                rule = self.width_record["chosen"] if self.width_record is not None and rule == "chosen" else "run"
            if self.width_record is not None:
                self.width_record["prediction_rule"] = rule
            self.keep_final = draw_cuts(priority, final.selector(cost_model, self.group_of_channel), self.rank)[1]
        names = [g.name for g in graph.groups]
        local = np.concatenate([np.arange(g.size) for g in graph.groups])
        self.posterior = ChannelPosterior([names[g] for g in self.group_of_channel], local, self.gate_draws,
                                          self.hyper_draws, keep_probability, kept_draws, decision,
                                          hdi_contains(priority, cuts.cut_level), [[] for _ in range(self.chains)],
                                          self._inference_label(), 1.0 - self.keep_final, self.chains)
        self.agreement = self._agreement(kept_draws, selector)
        return {name: [int(c) for c in local[(self.group_of_channel == gi) & ~decision]]
                for gi, name in enumerate(names)}

    def _checked(self, graph, selector: BudgetedSelector, cuts: PosteriorCuts, budget: RoundBudget, cost_model):
        """The run's cut or a more conservative one, as :meth:`WidthCheck.checked_cut` returns it
        (``graph``: the network :meth:`prepare` saw)."""
        scales = self.reparameterization()
        # the compensated shares' statistics are the unfolded network's: they serve only without folding
        self.width_check.prepare(graph.model, graph.inputs, self.calibration, scales,
                                 self.gathered if scales is None else None)
        checked = self.width_check.checked_cut(budget, cost_model, partial(self._cut_at, cost_model), (selector, cuts),
                                               self.check_prediction, self.follow_prediction)
        self.gathered = self.width_check.release()
        return checked

    def _agreement(self, kept_draws, selector) -> dict:
        halves = [pricing.priority(draws, selector.channel_cost)
                  for pricing, draws in zip(self.half_pricing, self.half_gate_draws)]
        layers = {"tau": self.hyper_draws["tau"], **self.posterior.layer_quantities()}  # what the report shows
        return posterior_agreement(kept_draws, self.chains, layers, halves,
                                   [draw_cuts(p, selector, self.rank)[1] for p in halves])

    def _inference_label(self) -> str:
        return (f"closed form: Laplace (diagonal Fisher) likelihood x {self.prior.name} prior, scales integrated "
                f"on a grid; {self.chains} independent set(s) of {self.draws} exact draws")

    # engine hooks ------------------------------------------------------------------------
    def reparameterization(self) -> torch.Tensor | None:
        if not self.fold_means:
            return None
        self._require_prepared()
        return torch.as_tensor(self.gate_draws.mean(0), dtype=torch.float32)

    def input_statistics(self):
        """The width check's input statistics of this round's network (it gathers them for every
        layer, folding :meth:`reparameterization` first, as the engine does before compensating)."""
        return self.gathered

    def prune_probability(self) -> np.ndarray | None:
        return None if self.keep_final is None else 1.0 - self.keep_final

    def keep_probability(self) -> np.ndarray | None:
        return None if self.posterior is None else self.posterior.keep_probability

    def round_record(self) -> dict:
        if self.posterior is None:
            return {}
        return {"layers": self.posterior.per_layer(), "uncertain_channels": int(self.posterior.uncertain.sum()),
                "posterior_agreement": self.agreement, "tau_mean": self.gsm.tau_mean(),
                "fisher_examples": self.fisher_examples,
                **({"width_check": self.width_record} if self.width_record is not None else {})}

    def after_cut(self, removal) -> None:
        self._round += 1
        if self.forgetting <= 0:
            self.carried = None
            return
        kept = np.flatnonzero(self.posterior.decision)
        local, tau = self.gsm.carried(kept, self.forgetting)
        layer = np.array(self.posterior.layer)[kept]  # by group name: the next graph may list groups anew
        self.carried = {"local": {name: local[layer == name].tolist() for name in dict.fromkeys(self.posterior.layer)},
                        "tau": tau.tolist()}

    def state_dict(self) -> dict:
        state = {"carried": self.carried, "round": self._round}
        if self.width_check is not None:
            state["standing_rule"] = self.width_check.standing_rule  # the rule a tie keeps (keep_chosen_rule)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.carried, self._round = state["carried"], int(state["round"])
        if self.width_check is not None:
            self.width_check.standing_rule = state.get("standing_rule", "run")  # absent in older run directories

    def write_artifacts(self, directory: Path, round_index: int) -> list[str]:
        return write_round_artifacts(self.posterior, directory, round_index)


def _compensation(value: bool | str, reparameterize: str, cross_layer: bool) -> bool:
    """The ``compensated`` option (``auto``, ``true``, ``false``, or a bool) as a switch."""
    text = str(value).lower()
    if text not in ("auto", "true", "false"):
        raise ConfigError(f"--criterion-option compensated must be auto, true or false, got {value!r}")
    fits = reparameterize == "lsq" and not cross_layer
    if text == "true" and not fits:
        raise ConfigError("--criterion-option compensated=true prices cuts after least-squares compensation: "
                          "it needs --reparameterize lsq and cannot be combined with cross_layer")
    return fits if text == "auto" else text == "true"


def _grid(prior: ScalePrior) -> ScaleGrid:
    try:
        return ScaleGrid.for_prior(prior)
    except ValueError as exc:
        raise BayesPruneError(str(exc)) from None
