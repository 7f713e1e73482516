"""The configuration of a pruning run, its validation and the budget schedule."""
from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from .annealing import ANNEAL_TARGETS
from .decision import Budget
from .decision.allocation import rounds_widths
from .errors import BudgetError, ConfigError

DEFAULT_TARGET_MACS = 0.5
LR_SCHEDULES = ("round", "run")  # --lr-schedule: a cosine per round's fine-tuning, or one over the run's


@dataclass(frozen=True)
class Bound:
    """The valid range of one numeric option (``None``: unbounded on that side); every value must
    also be finite. ``optional``: None is allowed (the option is unset)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def check(self, name: str, value) -> None:
        if value is None and self.optional:
            return
        flag = "--" + name.replace("_", "-")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{flag} must be a number {self.describe()}, got {value!r}") from None
        below = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        above = self.high is not None and (number >= self.high if self.high_open else number > self.high)
        if not np.isfinite(number):
            raise ConfigError(f"{flag} must be a finite number {self.describe()}, got {value}")
        if below or above:
            raise ConfigError(f"{flag} must be {self.describe()}, got {value}")


# Every numeric option of PruneConfig and its range (those of the budget: decision.Budget).
OPTION_BOUNDS = {
    "epochs": Bound(0), "distill": Bound(0, 1), "distill_temperature": Bound(0, low_open=True),
    "search_epochs": Bound(0), "lr": Bound(0, low_open=True), "batch_size": Bound(1), "calibration_batches": Bound(1),
    "expand": Bound(1), "expand_noise": Bound(0), "tau0": Bound(0, low_open=True, optional=True),
    "svi_steps": Bound(1), "svi_lr": Bound(0, low_open=True), "posterior_draws": Bound(2), "chains": Bound(1),
    "forgetting": Bound(0, 1), "anneal_t0": Bound(0, low_open=True), "anneal_alpha": Bound(0, 1, True, True),
    "latency_batch": Bound(1), "latency_grid": Bound(2), "latency_feedback": Bound(0),
    "train_subset": Bound(1, optional=True), "test_subset": Bound(1, optional=True), "seed": Bound(0)}


@dataclass
class PruneConfig:
    """Everything a run depends on; saved as ``config.json`` so a run can be repeated exactly."""

    model: str = "smallcnn-mnist5k"
    weights: str | None = None
    trust_pickle: bool = False  # allow full-pickle loading of --model/--weights files (trusted files only)
    data: str = "mnist5k"
    data_dir: str | None = None
    criterion: str = "bayes"
    target_macs: float | None = None  # None and no target_params: DEFAULT_TARGET_MACS
    target_params: float | None = None
    target_latency: float | None = None  # fraction of the base network's measured latency (decision/latency.py)
    latency_batch: int = 64  # the batch size the latency table is measured at
    latency_grid: int = 6  # widths per side of each layer's latency table
    # cuts the final round times against the base network to meet the budget on the clock, not only
    # in the table (decision/latency_feedback.py); 0: trust the table
    latency_feedback: int = 5
    target_chosen_by: str | None = None  # "evidence": the target came from --target-macs/--target-params auto
    rounds: int = 3
    schedule: str = "geometric"
    allocation: str | None = None  # None: the criterion's default (bayes: its posterior widths; others uniform)
    max_prune_fraction: float = 0.9
    # keep a multiple of this many channels per group (8: CPU/GPU-friendly widths), or "auto": the
    # widths at measured latency steps (decision/width_steps.py)
    round_to: int | str = 1
    epochs: float = 1.0
    distill: float = 0.0  # alpha of distillation from the unpruned network while fine-tuning (0: off)
    distill_temperature: float = 4.0
    search_epochs: float = 1.0  # training-time methods (pfam, sep, search-train): training before each cut
    from_scratch: bool = False  # re-initialise the model's weights first (training-time methods)
    lr: float = 0.01
    # round: each round's fine-tuning decays the learning rate from lr to 0 (a restart per cut) | run: one cosine
    # over every round's epochs (ResNet-20, 20%, distillation: a tie for bayes, -0.24 for obs; analysis/README.md)
    lr_schedule: str = "round"
    batch_size: int = 128
    calibration_batches: int = 8
    # reparameterization around the cut (any criterion): none | mean | lsq (bayesprune.surgery). lsq:
    # after fine-tuning a tie with mean, right after a cut far better (analysis/bayes_v2.py)
    reparameterize: str = "lsq"
    # after each cut, re-estimate BatchNorm statistics on the calibration batches (Li et al. 2020;
    # bayesprune.batchnorm_adaptation): any criterion; what fine-tuning's first steps do anyway.
    # None: on without fine-tuning (--epochs 0), where nothing else re-estimates them (measured in
    # analysis/bayes_v2.py: obs +2.8 points at 20% of the MACs, l2 +1.2 at 50%), else off
    adapt_batchnorm: bool | None = None
    expand: float = 1.0  # widen the base network by this factor first (Net2Wider)
    expand_noise: float = 0.01
    # bayes criteria (bayes: closed-form posterior; bayes-svi: the frozen-network SVI posterior)
    prior: str = "horseshoe"  # horseshoe | regularized-horseshoe | normal-jeffreys
    tau0: float | None = None  # scale of the global half-Cauchy; None: 1 for bayes, 0.1 for bayes-svi
    within: str = "obs"  # bayes: the criterion that orders channels inside a layer
    weight_norm_prior: bool = True  # bayes: the GSM on the channel's weight-norm-scaled gate (False: gate alone)
    interactions: bool = True  # bayes: price a layer's cut with its full Fisher block (False: the diagonal)
    per_layer_scale: bool = False  # a per-layer scale between global and local
    # any other option a criterion or prior declares in its constructor (bayesprune.options)
    criterion_options: dict = field(default_factory=dict)
    prior_options: dict = field(default_factory=dict)
    svi_steps: int = 300
    svi_lr: float = 0.02
    posterior_draws: int = 200  # per chain
    chains: int = 2  # independent SVI fits (or NUTS chains), pooled; >= 2 gives R-hat in the report
    inference: str = "svi"  # svi | nuts (full-data NUTS, small models only)
    svi_train_weights: bool = False  # update weights (MAP) jointly with the gates in SVI
    forgetting: float = 0.5  # rho of the carried prior; 0 refits the GSM prior every round
    annealing: bool = True  # soft masks at temperature T_r during fine-tuning
    # final: Gibbs mask of p(kept at the end), the prediction checked like a cut | current: p(kept this
    # round)^T | last: current, then final in the last annealed round (bayesprune.annealing)
    anneal_target: str = "final"
    anneal_t0: float = 1.0
    anneal_alpha: float = 0.5
    # data, reproducibility, output
    train_subset: int | None = None
    test_subset: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    overwrite: bool = False
    report: bool = True  # write RUN_DIR/report (HTML, figures, diagnostics) when the run ends
    progress: bool = True

    @property
    def adapts_batchnorm(self) -> bool:
        """Whether the run re-estimates BatchNorm statistics after each cut (``adapt_batchnorm``, or
        when not given: without fine-tuning)."""
        return self.adapt_batchnorm if self.adapt_batchnorm is not None else self.epochs == 0

    def budget(self, criterion=None) -> Budget:
        """The run's whole budget, validated (``criterion``: the object the run uses, whose default
        allocation applies when ``--allocation`` is not given)."""
        given = [flag for flag, value in (("--target-macs", self.target_macs), ("--target-params", self.target_params),
                                          ("--target-latency", self.target_latency)) if value is not None]
        if len(given) > 1:
            raise BudgetError(f"give one of {' or '.join(given)}, not both")
        if self.target_latency is not None:
            fraction, kind = _fraction(self.target_latency, "--target-latency"), "latency"
        elif self.target_params is not None:
            fraction, kind = _fraction(self.target_params, "--target-params"), "params"
        else:
            fraction, kind = _fraction(DEFAULT_TARGET_MACS if self.target_macs is None else self.target_macs,
                                       "--target-macs"), "macs"
        return Budget(fraction, kind, self.rounds, self.schedule, self.resolved_allocation(criterion),
                      self.max_prune_fraction, self.round_to)

    def validate(self, criterion=None) -> None:
        """Raise a one-line :class:`ConfigError`/:class:`BudgetError` for any bad option, before any
        work. ``criterion``: an object the run uses instead of ``self.criterion`` (not rebuilt here)."""
        from .criteria import make_criterion
        from .surgery import COMPENSATIONS

        budget = self.budget(criterion)
        for name, bound in OPTION_BOUNDS.items():  # every numeric option: range, and finite
            bound.check(name, getattr(self, name))
        name = self.criterion if criterion is None else criterion.name
        if name == "search-train" and (rounds_widths(budget.round_to) or budget.allocation != "uniform"):
            raise ConfigError("search-train chooses every layer's width itself; drop --allocation and --round-to")
        if self.reparameterize not in COMPENSATIONS:
            raise ConfigError(f"unknown --reparameterize {self.reparameterize!r}; choose one of "
                              f"{', '.join(COMPENSATIONS)}")
        if budget.kind == "latency" and self.expand > 1.0:
            raise ConfigError("--target-latency is a fraction of the base network's latency, which --expand "
                              "changes before it is measured; drop one of them")
        if self.distill > 0 and self.from_scratch:
            raise ConfigError("--distill learns from the unpruned network, which --from-scratch re-initialises; "
                              "drop one of them")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown --lr-schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if self.anneal_target not in ANNEAL_TARGETS:
            raise ConfigError(f"unknown --anneal-target {self.anneal_target!r}; choose one of "
                              f"{', '.join(ANNEAL_TARGETS)}")
        if criterion is None:
            make_criterion(self.criterion, config=self)  # bad names and options fail before any work

    def resolved_allocation(self, criterion=None) -> str:
        """``--allocation``, or the criterion's own default when none was given (``criterion``: the
        object the run uses, else the class named by ``self.criterion``)."""
        if self.allocation is not None:
            return self.allocation
        from .criteria import criterion_class

        return (criterion if criterion is not None else criterion_class(self.criterion)).default_allocation


def _fraction(value, flag: str) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        raise BudgetError(f"{flag} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < fraction <= 1.0):
        raise BudgetError(f"{flag} {value} is outside (0, 1]; it is the fraction of the base model "
                          "to keep, e.g. 0.5")
    return fraction


def environment() -> dict:
    import torch_pruning as tp

    return {"python": platform.python_version(), "torch": torch.__version__, "torch_pruning": tp.__version__,
            "platform": platform.platform(), "argv": sys.argv}
