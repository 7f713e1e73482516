"""``bayesprune compare``: the same base model, budget, rounds, fine-tuning and seeds for every method.

The grid is methods x budgets x seeds. Each finished cell is written to ``cells/<key>.json``
(atomically) and the cell's run directory to ``runs/<key>/``; rerunning the same command skips the
finished cells, so an interrupted comparison resumes where it stopped. When the grid is complete:

- ``results.csv``: method, target, seed, accuracy, accuracy right after the final cut, macs, params,
  macs_ratio, seconds;
- ``table.md``: mean ± sd over seeds per method and budget, the best accuracy per budget in bold;
- ``pareto.png``: accuracy against kept MACs with error bars, one line per method.

A *method* is a criterion name (``bayesprune criteria``) or one of the Bayes variants in
:data:`VARIANTS` (ablations of the iterative method).
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path


from .config import PruneConfig
from .distributed import SINGLE, Collective
from .errors import ConfigError, RunDirError
from .runs import atomic_write_json, atomic_write_text, check_writable

VARIANTS: dict[str, dict] = {
    "bayes-iterative": {"criterion": "bayes"},
    "bayes-oneshot": {"criterion": "bayes", "rounds": 1},
    "bayes-no-annealing": {"criterion": "bayes", "annealing": False},
    "bayes-no-carry": {"criterion": "bayes", "forgetting": 0.0},
    "bayes-no-reparam": {"criterion": "bayes", "reparameterize": "none"},
    "bayes-expand": {"criterion": "bayes", "expand": 1.5},
    "bayes-global": {"criterion": "bayes", "allocation": "global"},  # bayes's own default
    "bayes-uniform": {"criterion": "bayes", "allocation": "uniform"},  # the posterior does not set widths
    "bayes-round-8": {"criterion": "bayes", "allocation": "uniform", "round_to": 8},  # multiples of 8 channels
    "bayes-round-auto": {"criterion": "bayes", "allocation": "uniform", "round_to": "auto"},  # latency steps
    "bayes-diagonal": {"criterion": "bayes", "interactions": False},
    "bayes-anneal-final": {"criterion": "bayes", "anneal_target": "final"},  # bayes's own default
    "bayes-anneal-current": {"criterion": "bayes", "anneal_target": "current"},
    "bayes-anneal-last": {"criterion": "bayes", "anneal_target": "last"},
    "bayes-cross-layer": {"criterion": "bayes", "criterion_options": {"cross_layer": True}},  # all layers' Fisher
    "bayes-cross-layer-current": {"criterion": "bayes", "criterion_options": {"cross_layer": True},
                                  "anneal_target": "current"},
    "bayes-cross-layer-last": {"criterion": "bayes", "criterion_options": {"cross_layer": True},
                               "anneal_target": "last"},
    "bayes-unchecked": {"criterion": "bayes", "criterion_options": {"check_widths": False}},  # no held-out check
}


def method_settings(method: str) -> dict:
    """PruneConfig overrides of a method: a Bayes variant or a criterion by name."""
    from .criteria import CRITERIA

    if method in VARIANTS:
        return dict(VARIANTS[method])
    if method in CRITERIA:
        return {"criterion": method}
    raise ConfigError(f"unknown method {method!r}; choose criteria (bayesprune criteria) or "
                      f"{', '.join(VARIANTS)}")


def cell_key(method: str, target: float, seed: int) -> str:
    return f"{method}__macs{target:g}__seed{seed}"


def run_grid(base: PruneConfig, methods: list[str], targets: list[float], seeds: int, out: str | Path,
             progress: bool = True, runner=None, backend=None) -> list[dict]:
    """Run (or resume) the grid; return one row per cell. ``runner`` defaults to ``run_pruning``;
    ``backend`` (default :class:`~bayesprune.backends.Sequential`) runs the cells still to do, e.g.
    :class:`~bayesprune.backends.RayBackend` (one Ray task per cell)."""
    from .backends import Sequential

    backend = backend or Sequential()
    out = Path(out)
    settings = {m: method_settings(m) for m in methods}  # bad names fail before any work
    check_writable(out, "--out")
    for target in targets:
        replace(base, target_macs=target).validate()
    backend.check()  # an unreachable cluster fails here, before the grid's folder is written
    collective = backend.collective
    _check_same_grid(out, base, methods, targets, seeds, write=collective.is_main)
    cells = [_cell(base, settings, out, m, t, s) for t in targets for m in methods for s in range(seeds)]
    # what rank 0 found finished is what every process of a torchrun job skips
    done = collective.broadcast({cell.key: json.loads(cell.done.read_text()) for cell in cells if cell.done.is_file()})
    pending = [cell for cell in cells if cell.key not in done]
    done.update(backend.run(pending, runner, progress))
    rows = [done[cell.key] for cell in cells]
    if collective.is_main:
        write_outputs(out, rows, methods, targets)
    return rows


def _cell(base: PruneConfig, settings: dict, out: Path, method: str, target: float, seed: int) -> "Cell":
    key = cell_key(method, target, seed)
    config = replace(base, **settings[method], target_macs=target, seed=seed, out=str(out / "runs" / key),
                     overwrite=True, progress=False, report=False)
    return Cell(method, target, seed, config, out / "cells" / f"{key}.json")


@dataclass(frozen=True)
class Cell:
    """One (method, budget, seed) run of a grid and the file that says it finished."""

    method: str
    target: float
    seed: int
    config: PruneConfig
    done: Path

    @property
    def key(self) -> str:
        return cell_key(self.method, self.target, self.seed)


def run_cell(cell: Cell, runner=None, collective: Collective = SINGLE) -> dict:
    """Run one cell and write its row (atomically: a killed cell leaves no row and runs again);
    a torchrun job's processes all run it, rank 0 writes."""
    from .rounds import run_pruning

    summary = runner(cell.config) if runner else run_pruning(cell.config, collective=collective)
    row = {"method": cell.method, "target": cell.target, "seed": cell.seed, "accuracy": summary["final"]["accuracy"],
           "macs": summary["final"]["macs"], "params": summary["final"]["params"],
           "macs_ratio": summary["final_ratio"]["macs"], "seconds": sum(r["seconds"] for r in summary["rounds"]),
           "accuracy_after_final_cut": summary["rounds"][-1]["accuracy_after_cut"]}
    if collective.is_main:
        atomic_write_json(cell.done, row)
    return row


def _check_same_grid(out: Path, base: PruneConfig, methods, targets, seeds, write: bool = True) -> None:
    """A directory holds one comparison: resuming needs the same base settings. ``write``: record
    them (and make the folder) unless another process does."""
    ignored = ("out", "overwrite", "progress", "seed", "report")
    spec = {"base": {k: v for k, v in asdict(base).items() if k not in ignored},
            "methods": methods, "targets": targets, "seeds": seeds}
    path = out / "compare.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old["base"] != spec["base"]:
            raise RunDirError(f"{out} holds a comparison with other settings; use a new --out or the "
                              "same options to resume it")
    if write:
        (out / "cells").mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, spec)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write_outputs(out: Path, rows: list[dict], methods: list[str], targets: list[float]) -> None:
    fields = ["method", "target", "seed", "accuracy", "accuracy_after_final_cut", "macs", "params", "macs_ratio",
              "seconds"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_text(out / "table.md", markdown_table(rows, methods, targets))
    pareto_plot(out / "pareto.png", rows, methods)


def markdown_table(rows: list[dict], methods: list[str], targets: list[float]) -> str:
    """Mean ± sd accuracy (%) per method (rows) and MACs target (columns); the best per target bold."""
    cells = {}
    for method in methods:
        for target in targets:
            accuracies = [r["accuracy"] for r in rows if r["method"] == method and r["target"] == target]
            if accuracies:
                cells[method, target] = _mean_sd([100 * a for a in accuracies])
    best = {t: max((cells[m, t][0] for m in methods if (m, t) in cells), default=None) for t in targets}
    from .report.blocks import markdown_table as table

    lines = []
    for method in methods:
        values = []
        for target in targets:
            if (method, target) not in cells:
                values.append("-")
                continue
            mean, sd = cells[method, target]
            text = f"{mean:.2f} ± {sd:.2f}%"
            values.append(f"**{text}**" if mean == best[target] else text)
        lines.append([f"`{method}`", *values])
    return table(["method"] + [f"accuracy at {t:g} MACs" for t in targets], lines) + "\n"


def pareto_plot(path: Path, rows: list[dict], methods: list[str]) -> None:
    from .report.figures import pyplot, save_figure

    figure, axes = pyplot().subplots(figsize=(6, 4))
    for method in methods:
        points = []
        for target in sorted({r["target"] for r in rows if r["method"] == method}):
            mine = [r for r in rows if r["method"] == method and r["target"] == target]
            macs, _ = _mean_sd([r["macs_ratio"] for r in mine])
            mean, sd = _mean_sd([100 * r["accuracy"] for r in mine])
            points.append((macs, mean, sd))
        if points:
            x, y, e = zip(*points)
            axes.errorbar(x, y, yerr=e, marker="o", capsize=3, label=method)
    axes.set_xlabel("MACs kept (fraction of base)")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
