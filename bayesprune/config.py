"""The configuration of a pruning run, its validation and the budget schedule."""
from __future__ import annotations

import platform
import sys
from dataclasses import dataclass

import numpy as np
import torch

from .decision import ALLOCATIONS, Budget
from .errors import BudgetError

SCHEDULES = ("geometric", "linear")
ANNEAL_TARGETS = ("current", "final")
DEFAULT_TARGET_MACS = 0.5


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
    rounds: int = 3
    schedule: str = "geometric"
    allocation: str | None = None  # None: the criterion's default (bayes: its posterior widths; others uniform)
    max_prune_fraction: float = 0.9
    round_to: int = 1  # keep a multiple of this many channels per group (8: CPU/GPU-friendly widths)
    epochs: float = 1.0
    distill: float = 0.0  # alpha of distillation from the unpruned network while fine-tuning (0: off)
    distill_temperature: float = 4.0
    search_epochs: float = 1.0  # training-time methods (pfam, sep, search-train): training before each cut
    from_scratch: bool = False  # re-initialise the model's weights first (training-time methods)
    lr: float = 0.01
    batch_size: int = 128
    calibration_batches: int = 8
    # reparameterization around the cut (any criterion): none | mean | lsq (bayesprune.surgery)
    reparameterize: str = "mean"
    expand: float = 1.0  # widen the base network by this factor first (Net2Wider)
    expand_noise: float = 0.01
    # bayes criteria (bayes: closed-form posterior; bayes-svi: the frozen-network SVI posterior)
    prior: str = "horseshoe"  # horseshoe | regularized-horseshoe | normal-jeffreys
    tau0: float | None = None  # scale of the global half-Cauchy; None: 1 for bayes, 0.1 for bayes-svi
    within: str = "l2"  # bayes: the criterion that orders channels inside a layer
    weight_norm_prior: bool = True  # bayes: the GSM on the channel's weight-norm-scaled gate (False: gate alone)
    interactions: bool = True  # bayes: price a layer's cut with its full Fisher block (False: the diagonal)
    per_layer_scale: bool = False  # a per-layer scale between global and local
    svi_steps: int = 300
    svi_lr: float = 0.02
    posterior_draws: int = 200  # per chain
    chains: int = 2  # independent SVI fits (or NUTS chains), pooled; >= 2 gives R-hat in the report
    inference: str = "svi"  # svi | nuts (full-data NUTS, small models only)
    svi_train_weights: bool = False  # update weights (MAP) jointly with the gates in SVI
    forgetting: float = 0.5  # rho of the carried prior; 0 refits the GSM prior every round
    annealing: bool = True  # soft masks at temperature T_r during fine-tuning
    anneal_target: str = "current"  # current: p(kept this round)^T | final: Gibbs mask of p(kept at the end)
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

    def budget(self) -> Budget:
        if self.target_params is not None and self.target_macs is not None:
            raise BudgetError("give either --target-macs or --target-params, not both")
        if self.target_params is not None:
            return Budget(_fraction(self.target_params, "--target-params"), "params")
        macs = DEFAULT_TARGET_MACS if self.target_macs is None else self.target_macs
        return Budget(_fraction(macs, "--target-macs"), "macs")

    def validate(self) -> None:
        from .criteria import make_criterion
        from .surgery import COMPENSATIONS

        self.budget()
        if self.rounds < 1:
            raise BudgetError(f"--rounds must be >= 1, got {self.rounds}")
        if self.schedule not in SCHEDULES:
            raise BudgetError(f"unknown --schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.allocation is not None and self.allocation not in ALLOCATIONS:
            raise BudgetError(f"unknown --allocation {self.allocation!r}; choose one of {', '.join(ALLOCATIONS)}")
        allocation = self.resolved_allocation()
        if self.round_to < 1 or (self.round_to > 1 and allocation != "uniform"):
            raise BudgetError(f"--round-to must be >= 1 and needs --allocation uniform, got {self.round_to} "
                              f"with --allocation {allocation}")
        if not 0.0 < self.max_prune_fraction < 1.0:
            raise BudgetError(f"--max-prune-fraction must be in (0, 1), got {self.max_prune_fraction}")
        if self.calibration_batches < 1:
            raise BudgetError(f"--calibration-batches must be >= 1 (the batches data-dependent criteria and "
                              f"compensation see), got {self.calibration_batches}")
        finite = all(np.isfinite(v) for v in (self.epochs, self.search_epochs, self.lr, self.max_prune_fraction))
        if not finite or self.epochs < 0 or self.search_epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise BudgetError("--epochs and --search-epochs must be finite and >= 0, --lr finite and > 0 and "
                              "--batch-size >= 1")
        if self.criterion == "search-train" and (self.round_to > 1 or allocation != "uniform"):
            raise BudgetError("search-train chooses every layer's width itself; drop --allocation and --round-to")
        if self.reparameterize not in COMPENSATIONS:
            raise BudgetError(f"unknown --reparameterize {self.reparameterize!r}; choose one of "
                              f"{', '.join(COMPENSATIONS)}")
        if self.expand < 1.0 or self.expand_noise < 0:
            raise BudgetError(f"--expand must be >= 1 (1: no expansion) and --expand-noise >= 0, "
                              f"got {self.expand} and {self.expand_noise}")
        if self.anneal_t0 <= 0 or not 0.0 < self.anneal_alpha < 1.0:
            raise BudgetError("--anneal-t0 must be > 0 and --anneal-alpha in (0, 1)")
        if not 0.0 <= self.distill <= 1.0 or not self.distill_temperature > 0:
            raise BudgetError(f"--distill must be in [0, 1] (0: off) and --distill-temperature > 0, got "
                              f"{self.distill} and {self.distill_temperature}")
        if self.distill > 0 and self.from_scratch:
            raise BudgetError("--distill learns from the unpruned network, which --from-scratch re-initialises; "
                              "drop one of them")
        if self.anneal_target not in ANNEAL_TARGETS:
            raise BudgetError(f"unknown --anneal-target {self.anneal_target!r}; choose one of "
                              f"{', '.join(ANNEAL_TARGETS)}")
        if (self.svi_steps < 1 or self.posterior_draws < 2 or not self.svi_lr > 0
                or (self.tau0 is not None and not 0 < self.tau0 < float("inf"))):
            raise BudgetError("--svi-steps >= 1, --posterior-draws >= 2, --svi-lr > 0 and --tau0 > 0 are required")
        make_criterion(self.criterion, **self.criterion_options())  # bad names fail before any work

    def resolved_allocation(self) -> str:
        """``--allocation``, or the criterion's own default when none was given."""
        if self.allocation is not None:
            return self.allocation
        from .criteria import CRITERIA

        cls = CRITERIA.get(self.criterion)
        return cls.default_allocation if cls is not None else "uniform"

    def criterion_options(self) -> dict:
        if self.criterion == "bayes":
            return {"prior": self.prior, "tau0": 1.0 if self.tau0 is None else self.tau0, "within": self.within,
                    "draws": self.posterior_draws, "chains": self.chains, "forgetting": self.forgetting,
                    "per_layer": self.per_layer_scale, "weight_norm_prior": self.weight_norm_prior,
                    "interactions": self.interactions}
        if self.criterion != "bayes-svi":
            return {}
        from .bayes import SVIConfig

        return {"prior": self.prior, "tau0": 0.1 if self.tau0 is None else self.tau0, "per_layer": self.per_layer_scale,
                "svi": SVIConfig(steps=self.svi_steps, lr=self.svi_lr, seed=self.seed),
                "draws": self.posterior_draws, "progress": self.progress, "inference": self.inference,
                "train_weights": self.svi_train_weights, "forgetting": self.forgetting,
                "chains": self.chains}


def _fraction(value, flag: str) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        raise BudgetError(f"{flag} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < fraction <= 1.0):
        raise BudgetError(f"{flag} {value} is outside (0, 1]; it is the fraction of the base model "
                          "to keep, e.g. 0.5")
    return fraction


def round_targets(final: float, rounds: int, schedule: str, start: float = 1.0) -> list[float]:
    """Fractions of the base cost to reach after each round, from ``start`` (the network before
    round 1, e.g. 2.25 after a 1.5x expansion) down to ``final``.

    geometric: ``start * (final / start) ** (r / R)`` removes the same *share* of what remains
    every round; linear: ``start - (start - final) r / R`` removes the same absolute amount.
    """
    steps = np.arange(1, rounds + 1) / rounds
    values = start * (final / start) ** steps if schedule == "geometric" else start - (start - final) * steps
    return [float(v) for v in values]


def environment() -> dict:
    import torch_pruning as tp

    return {"python": platform.python_version(), "torch": torch.__version__, "torch_pruning": tp.__version__,
            "platform": platform.platform(), "argv": sys.argv}
