"""The iterative engine: score -> decide -> cut -> (re-count) -> fine-tune -> record, per round."""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .criteria import make_criterion
from .criteria.base import Calibration
from .data import load_dataset
from .decision import ALLOCATIONS, Budget, CostModel
from .errors import BudgetError
from .groups import ChannelGraph, count_macs_params
from .pretrained import resolve_model
from .runs import RunDir
from .training import FitConfig, evaluate, fit, resolve_device, seed_everything

SCHEDULES = ("geometric", "linear")
DEFAULT_TARGET_MACS = 0.5


@dataclass
class PruneConfig:
    """Everything a run depends on; saved as ``config.json`` so a run can be repeated exactly."""

    model: str = "smallcnn-mnist5k"
    weights: str | None = None
    data: str = "mnist5k"
    data_dir: str | None = None
    criterion: str = "l1"
    target_macs: float | None = None  # None and no target_params: DEFAULT_TARGET_MACS
    target_params: float | None = None
    rounds: int = 3
    schedule: str = "geometric"
    allocation: str = "uniform"
    max_prune_fraction: float = 0.9
    epochs: float = 1.0
    lr: float = 0.01
    batch_size: int = 128
    calibration_batches: int = 8
    prior: str = "horseshoe"  # bayes: horseshoe | regularized-horseshoe | normal-jeffreys
    tau0: float = 0.1  # bayes: scale of the global half-Cauchy
    per_layer_scale: bool = False  # bayes: a per-layer scale between global and local
    svi_steps: int = 300
    svi_lr: float = 0.02
    posterior_draws: int = 200
    inference: str = "svi"  # bayes: svi | nuts (full-data NUTS, small models only)
    svi_train_weights: bool = False  # bayes: update weights (MAP) jointly with the gates in SVI
    train_subset: int | None = None
    test_subset: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    overwrite: bool = False
    progress: bool = True

    def budget(self) -> Budget:
        if self.target_params is not None and self.target_macs is not None:
            raise BudgetError("give either --target-macs or --target-params, not both")
        if self.target_params is not None:
            return Budget(_fraction(self.target_params, "--target-params"), "params")
        macs = DEFAULT_TARGET_MACS if self.target_macs is None else self.target_macs
        return Budget(_fraction(macs, "--target-macs"), "macs")

    def validate(self) -> None:
        self.budget()
        if self.rounds < 1:
            raise BudgetError(f"--rounds must be >= 1, got {self.rounds}")
        if self.schedule not in SCHEDULES:
            raise BudgetError(f"unknown --schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.allocation not in ALLOCATIONS:
            raise BudgetError(f"unknown --allocation {self.allocation!r}; choose one of {', '.join(ALLOCATIONS)}")
        if not 0.0 < self.max_prune_fraction < 1.0:
            raise BudgetError(f"--max-prune-fraction must be in (0, 1), got {self.max_prune_fraction}")
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise BudgetError("--epochs must be >= 0, --lr > 0 and --batch-size >= 1")
        make_criterion(self.criterion, **self.criterion_options())  # bad names fail before any work
        if self.svi_steps < 1 or self.posterior_draws < 2 or self.svi_lr <= 0 or self.tau0 <= 0:
            raise BudgetError("--svi-steps >= 1, --posterior-draws >= 2, --svi-lr > 0 and --tau0 > 0 are required")

    def criterion_options(self) -> dict:
        if self.criterion != "bayes":
            return {}
        from .bayes import SVIConfig

        return {"prior": self.prior, "tau0": self.tau0, "per_layer": self.per_layer_scale,
                "svi": SVIConfig(steps=self.svi_steps, lr=self.svi_lr, seed=self.seed),
                "draws": self.posterior_draws, "progress": self.progress, "inference": self.inference,
                "train_weights": self.svi_train_weights}


def _fraction(value, flag: str) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        raise BudgetError(f"{flag} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < fraction <= 1.0):
        raise BudgetError(f"{flag} {value} is outside (0, 1]; it is the fraction of the base model "
                          "to keep, e.g. 0.5")
    return fraction


def round_targets(final: float, rounds: int, schedule: str) -> list[float]:
    """Fractions of the base cost to reach after each round.

    geometric: ``final ** (r / R)`` removes the same *share* of what remains every round;
    linear: ``1 - (1 - final) r / R`` removes the same absolute amount.
    """
    steps = np.arange(1, rounds + 1) / rounds
    values = final ** steps if schedule == "geometric" else 1.0 - (1.0 - final) * steps
    return [float(v) for v in values]


def environment() -> dict:
    import torch_pruning as tp

    return {"python": platform.python_version(), "torch": torch.__version__, "torch_pruning": tp.__version__,
            "platform": platform.platform(), "argv": sys.argv}


def run_pruning(config: PruneConfig, echo: Callable[[str], None] = lambda _s: None) -> dict:
    """Run the whole job and return the summary (also written to ``summary.json`` if ``config.out``)."""
    config.validate()
    budget = config.budget()
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    data = load_dataset(config.data, config.data_dir).subset(config.train_subset, config.test_subset)
    resolved = resolve_model(config.model, data, config.weights)
    model, arch = resolved.model.to(device), resolved.arch
    run_dir = RunDir(config.out, config.overwrite) if config.out else None
    inputs = data.test_x[:1].to(device)
    criterion = make_criterion(config.criterion, config.seed, **config.criterion_options())
    fit_config = FitConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size)

    base_macs, base_params = count_macs_params(model, inputs)
    base = {"accuracy": evaluate(model, data.test_x, data.test_y, device), "macs": base_macs, "params": base_params}
    base_cost = base[budget.kind]
    echo(f"{data.describe()}\nmodel {resolved.source}: accuracy {base['accuracy']:.4f}, "
         f"{base_macs / 1e6:.2f} M MACs, {base_params / 1e3:.1f} k params")
    if run_dir:
        run_dir.write_json("config.json", {"config": asdict(config), "model_source": resolved.source,
                                            "architecture": arch.to_dict(), "environment": environment()})
        run_dir.log_metrics({"event": "base", **base})
    history = list(resolved.pruning_history)
    rounds = []
    for r, fraction in enumerate(round_targets(budget.fraction, config.rounds, config.schedule), start=1):
        start = time.perf_counter()
        target = fraction * base_cost
        removed = _cut_to_target(model, inputs, criterion, data, config, device, target, budget.kind, history)
        decision_seconds = time.perf_counter() - start  # scoring (SVI for bayes), decision and cut
        macs, params = count_macs_params(model, inputs)
        accuracy_after_cut = evaluate(model, data.test_x, data.test_y, device)
        fit_start = time.perf_counter()
        train_stats = fit(model, data, fit_config, generator, device, config.progress, desc=f"round {r} fine-tune")
        finetune_seconds = time.perf_counter() - fit_start
        record = {"round": r, "target_fraction": fraction, "removed_channels": removed,
                  "accuracy_after_cut": accuracy_after_cut,
                  "accuracy": evaluate(model, data.test_x, data.test_y, device),
                  "macs": macs, "params": params, "train_loss": train_stats["loss"],
                  "decision_seconds": decision_seconds, "finetune_seconds": finetune_seconds,
                  "seconds": time.perf_counter() - start}
        rounds.append(record)
        echo(f"round {r}/{config.rounds}: target {fraction:.3f}, removed {removed} channels, accuracy "
             f"{accuracy_after_cut:.4f} after cut -> {record['accuracy']:.4f} after fine-tune, "
             f"{macs / 1e6:.2f} M MACs ({macs / base_macs:.3f}), {record['seconds']:.1f} s")
        posterior = getattr(criterion, "posterior", None)
        if posterior is not None:
            record["layers"] = posterior.per_layer()
            record["uncertain_channels"] = int(posterior.uncertain.sum())
        if run_dir:
            record["files"] = criterion.write_artifacts(run_dir.path, r)
            run_dir.log_metrics({"event": "round", **record})
            save_checkpoint(run_dir.file("model.pt"), model.cpu(), arch, history,
                            {"round": r, "accuracy": record["accuracy"], "macs": macs, "params": params,
                             "data": config.data, "criterion": config.criterion})
            model.to(device)
    final = {k: rounds[-1][k] for k in ("accuracy", "macs", "params")}
    summary = {"criterion": config.criterion, "budget": {"kind": budget.kind, "fraction": budget.fraction},
               "base": base, "final": final,
               "final_ratio": {"macs": final["macs"] / base_macs, "params": final["params"] / base_params},
               "rounds": [{k: rec[k] for k in ("round", "accuracy", "accuracy_after_cut", "macs", "params",
                                               "decision_seconds", "finetune_seconds", "seconds")}
                          for rec in rounds]}
    if run_dir:
        run_dir.write_json("summary.json", summary)
    return summary


def _cut_to_target(model, inputs, criterion, data, config, device, target, kind, history) -> int:
    """Score, decide and cut once; verify the cut with torch-pruning's own count.

    The cost model's prediction is an upper bound of that count (its constant terms can only
    shrink when channels go; see :mod:`bayesprune.decision.cost`), so one cut meets the target.
    """
    graph = ChannelGraph(model, inputs)
    if criterion.needs_data:
        criterion.prepare(model, graph, Calibration(data, device, config.batch_size,
                                                    config.calibration_batches, config.seed))
    removal = criterion.select(graph, CostModel.build(graph), target, kind, config.allocation,
                               config.max_prune_fraction)
    history.extend(graph.prune(removal))
    macs, params = count_macs_params(model, inputs)
    counted = macs if kind == "macs" else params
    if counted > target:  # would mean the cost model missed a growing term: a bug, not user error
        raise RuntimeError(f"cut left {counted} {kind}, above the target {target:.0f}; please report this model")
    return sum(len(v) for v in removal.values())
