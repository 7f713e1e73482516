"""Is `bayesprune plan` calibrated? On both shipped networks and 3 seeds: the plan, then the actual
one-round cut at each of its budgets (no fine-tuning, the run's reparameterization), measured on
the test set, which the plan never reads. Reports how often the measured accuracy falls inside the
predicted 90% interval (target: 80-97% over all budgets), a reliability curve over nominal levels,
and the evidence-chosen budget beside the budget where fine-tuned accuracy falls 1 point below the
base (from a compare grid: `bayes_v2` for ResNet-20, a `bayesprune compare` grid made here for the
small CNN).

The shipped bases were trained on all their training images, so the plan's held-out training
images were seen in training. The same architectures are therefore also trained here on the first
part of the same training images only (``bayesprune train --train-subset``, the shipped cards'
epochs and learning rates; checkpoints and cards in analysis/bases/), and the plan measures its
cuts on the rest, which those bases never saw: the calibration the plan has when its held-out
images are new to the network.

Seeds change the posterior's draws (the calibration batches and the held-out images are fixed, as
in a run). Writes analysis/results/plan_calibration.json (resumable: finished cells are kept) and
analysis/figures/plan_reliability.png. How cells are scored: analysis/plan_calibration_scoring.py.
Usage: python analysis/plan_calibration.py [--networks a,b] [--seeds 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

import _common  # analysis/_common.py: scripts run from this folder have it on sys.path
from plan_calibration_scoring import one_point_budget, scored, scored_again, summarise

RESULTS = Path(__file__).resolve().parent / "results"
FIGURES = Path(__file__).resolve().parent / "figures"
BASES = Path(__file__).resolve().parent / "bases"
SHIPPED = {"smallcnn-mnist5k": "mnist5k", "resnet20-fashion-mnist": "fashion-mnist"}


@dataclass(frozen=True)
class UnseenBase:
    """A base trained here on the first ``train_images`` training images (the shipped card's epochs and
    learning rate), so that the plan's held-out images, the last ones, are new to it."""

    architecture: str
    data: str
    train_images: int
    epochs: float
    lr: float


UNSEEN = {"smallcnn-mnist5k-first3000": UnseenBase("smallcnn", "mnist5k", 3000, 15, 0.05),
          "resnet20-fashion-mnist-first20000": UnseenBase("resnet20", "fashion-mnist", 20000, 8, 0.1)}
NETWORKS = {**SHIPPED, **{name: base.data for name, base in UNSEEN.items()}}
FINETUNE_GRID = (0.7, 0.5, 0.3, 0.2)  # the compare grid of the small CNN (bayes, default fine-tuning)
TEST_QUICK = 200  # test images of --quick


def base_model(network: str, quick: bool, folder: Path) -> str:
    """What ``--model`` names: a shipped id, or the checkpoint of an unseen base (trained into
    ``folder`` when it is not there yet; --quick: a tiny one)."""
    if network in SHIPPED:
        return network
    base = UNSEEN[network]
    path = folder / f"{network}{'-quick' if quick else ''}.pt"
    if not path.is_file():
        from bayesprune.train_base import TrainConfig, train_base

        train_base(TrainConfig(model=base.architecture, data=base.data, out=str(path), lr=base.lr, seed=0,
                               epochs=0.2 if quick else base.epochs, progress=not quick,
                               train_subset=400 if quick else base.train_images), echo=print)
    return str(path)


def plan_cell(network: str, data: str, seed: int, quick: bool, model: str) -> dict:
    from bayesprune.config import PruneConfig
    from bayesprune.plan import PlanConfig, make_plan

    run = PruneConfig(model=model, data=data, seed=seed, progress=False,
                      train_subset=600 if quick else None, posterior_draws=20 if quick else 200,
                      calibration_batches=2 if quick else 8)
    config = PlanConfig(run, fractions=(0.7, 0.4) if quick else PlanConfig().fractions,
                        evaluated_draws=4 if quick else PlanConfig().evaluated_draws,
                        # an unseen base: the plan's default, the training images it never saw
                        holdout=200 if quick else (2000 if network in SHIPPED else None))
    start = time.perf_counter()
    plan = make_plan(config)
    seconds = time.perf_counter() - start
    from bayesprune.data import load_dataset

    test_images = TEST_QUICK if quick else len(load_dataset(data).test_y)
    cells = []
    for budget in plan["budgets"]:
        if not budget["reachable"]:
            continue
        measured, chosen, base_test = actual_cut(run, budget["fraction"], quick)
        unchecked = measured if chosen in ("run", None) else actual_cut(
            replace(run, criterion_options={"check_widths": False}), budget["fraction"], quick)[0]
        accuracy = budget["accuracy"]
        cell = {"fraction": budget["fraction"], "held_out_images": plan["held_out_images"],
                "test_images": test_images, "base_test": base_test,
                "reference_accuracy": plan["base"]["reference_accuracy"],
                "discordance_floor": plan["discordance_floor"],
                "predicted": accuracy["mean"], "decision_predicted": accuracy["decision"], "loss": budget["loss"],
                "draw_accuracy": budget["draw_accuracy"], "draw_loss": budget["draw_loss"],
                "draw_discordance": budget["draw_discordance"],
                # the posterior's own cut (the run without its held-out width check): what plan predicts
                "measured_test": unchecked,
                # the default run's cut, which the width check may have made more conservative
                "measured_test_run": measured, "width_check_chose": chosen}
        cells.append(scored(cell, plan["held_out_seen_by_base"], seed, plan["interval"]))
    if network in UNSEEN and plan["held_out_seen_by_base"] is not False:
        raise RuntimeError(f"{network}: the plan's held-out images were not all unseen by the base")
    return {"network": network, "model": model, "held_out_seen_by_base": plan["held_out_seen_by_base"],
            "seed": seed, "plan_seconds": seconds,
            "base_held_out": plan["base"]["held_out_accuracy"],
            "evidence": {k: plan["evidence"][k] for k in ("chosen_fraction", "removed_channels",
                                                           "channels_with_positive_change", "channels")},
            "sentence": plan["sentence"], "agreement_passes": (plan["posterior_agreement"] or {}).get("passes"),
            "budgets": cells}


def actual_cut(run, fraction: float, quick: bool) -> tuple[float, str | None, float]:
    """Test accuracy right after `bayesprune run --rounds 1 --epochs 0 --target-macs fraction`, which
    cut its width check chose (None: no check), and the base's test accuracy."""
    from bayesprune.criteria import BayesLaplace
    from bayesprune.report.load import load_run
    from bayesprune.rounds import run_pruning

    with tempfile.TemporaryDirectory() as tmp:
        # the cut as the planned run (which fine-tunes) makes it: epochs 0 alone would adapt BatchNorm and
        # let the width check take its held-out best
        planned_check = BayesLaplace.from_config(run).width_check if run.criterion == "bayes" else None
        margin = {"check_z": planned_check.z} if planned_check is not None else {}
        summary = run_pruning(replace(run, rounds=1, epochs=0, target_macs=fraction, report=False,
                                      adapt_batchnorm=run.adapts_batchnorm,
                                      criterion_options={**margin, **run.criterion_options},
                                      test_subset=TEST_QUICK if quick else None, out=f"{tmp}/run"))
        records = load_run(Path(tmp) / "run").rounds
    check = next((r["width_check"] for r in records if "width_check" in r), None)
    return summary["rounds"][0]["accuracy_after_cut"], check["chosen"] if check else None, summary["base"]["accuracy"]


def finetune_grid(network: str, data: str, seeds: int, quick: bool) -> dict:
    """`bayesprune compare --methods bayes` over FINETUNE_GRID: fine-tuned accuracy per budget."""
    from bayesprune.compare import run_grid
    from bayesprune.config import PruneConfig

    from bayesprune.pretrained import shipped_models

    with tempfile.TemporaryDirectory() as tmp:
        config = PruneConfig(model=network, data=data, progress=False, train_subset=600 if quick else None,
                             calibration_batches=2 if quick else 8,
                             test_subset=200 if quick else None, epochs=0.1 if quick else 1.0)
        rows = run_grid(config, ["bayes"], list(FINETUNE_GRID[:2] if quick else FINETUNE_GRID), seeds, tmp,
                        progress=False)
    accuracy: dict = {}
    for row in rows:
        accuracy.setdefault(row["target"], []).append(row["accuracy"])
    return {"source": "bayesprune compare --methods bayes, default run settings (made by this script)",
            "base": shipped_models()[network]["test_accuracy"],
            "by_fraction": {f"{k:g}": v for k, v in sorted(accuracy.items())}}


def resnet_grid() -> dict:
    """Fine-tuned `bayes` (its default configuration) at 0.5 and 0.2 from analysis/results/bayes_v2_*
    (read, not measured: it is rebuilt on every call)."""
    from bayes_v2_names import default_bayes, spelled_out

    result = json.loads((RESULTS / "bayes_v2_resnet20-fashion-mnist.json").read_text())
    accuracy: dict = {}
    for row in map(spelled_out, result["rows"]):
        if row["method"] == default_bayes() and row.get("regime") == "fine-tune":
            accuracy.setdefault(row["target"], []).append(row["accuracy"])
    from bayesprune.pretrained import shipped_models

    return {"source": "analysis/results/bayes_v2_resnet20-fashion-mnist.json (16k training images, 3 rounds x 2 "
                      "epochs)", "base": shipped_models()["resnet20-fashion-mnist"]["test_accuracy"],
            "by_fraction": {f"{k:g}": v for k, v in sorted(accuracy.items())}}


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    levels = [float(k) for k in result["summary"]["reliability"]]
    left.plot([0, 1], [0, 1], ":", color="gray")
    left.plot(levels, list(result["summary"]["reliability"].values()), "o-",
              label="the plan's interval, shipped bases (held-out images seen)")
    left.plot(levels, list(result["summary"]["reliability_held_out_accuracy"].values()), "s--", color="gray",
              label="draws' held-out accuracy, unpaired (the first version)")
    if result.get("summary_unseen"):
        left.plot(levels, list(result["summary_unseen"]["reliability"].values()), "^-", color="C2",
                  label="the plan's interval, bases that never saw the held-out images")
    left.legend(fontsize=8)
    left.set_xlabel("nominal coverage of the interval")
    left.set_ylabel("share of cuts whose test accuracy is inside")
    left.set_title("reliability (all networks, budgets, seeds)", fontsize=10)
    for i, network in enumerate(dict.fromkeys(c["network"] for c in result["cells"])):
        budgets = [b for c in result["cells"] if c["network"] == network for b in c["budgets"]]
        x = np.array([b["fraction"] for b in budgets])
        right.errorbar(x - 0.005 + 0.01 * i, [100 * b["predicted"] for b in budgets],
                       yerr=[[100 * (b["predicted"] - b["low"]) for b in budgets],
                             [100 * (b["high"] - b["predicted"]) for b in budgets]],
                       fmt="o", ms=3, alpha=0.6, color=f"C{i}", label=f"{network}: predicted, 90% interval")
        right.plot(x - 0.005 + 0.01 * i, [100 * b["measured_test"] for b in budgets], "x", color=f"C{i}",
                   label=f"{network}: measured (test)")
    right.set_title("shipped bases", fontsize=10)
    right.set_xlabel("fraction of the base MACs kept")
    right.set_ylabel("accuracy right after the cut (%)")
    right.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def markdown(result: dict) -> str:
    """The calibration as README tables (analysis/readme_tables.py)."""
    summary = result["summary"]
    lines = [f"The shipped bases (trained on all their training images: the plan's held-out ones were seen). "
             f"Coverage of the 90% interval over all {summary['cells']} cuts (networks x budgets x seeds), "
             f"the posterior's own cut (what plan predicts): **{100 * summary['coverage_90']:.0f}%** (target "
             f"80-97%); the default run's cut, whose width check may cut differently: "
             f"{100 * summary['coverage_90_run']:.0f}%.", "",
             "| nominal level | 0.5 | 0.7 | 0.8 | 0.9 | 0.95 |", "|---|---|---|---|---|---|",
             "| share inside: the plan's interval (base test accuracy minus the paired held-out loss) | "
             + " | ".join(f"{100 * v:.0f}%" for v in summary["reliability"].values()) + " |",
             "| share inside: the draws' held-out accuracy, unpaired (the first version) | "
             + " | ".join(f"{100 * v:.0f}%" for v in summary["reliability_held_out_accuracy"].values()) + " |", ""]
    for network, numbers in summary["by_network"].items():
        cells = [b for c in result["cells"] if c["network"] == network for b in c["budgets"]]
        lines += [f"**{network}**: coverage {100 * numbers['coverage_90']:.0f}% of {numbers['cells']}, "
                  f"mean |error| {numbers['mean_abs_error_points']:.1f} points, mean interval width "
                  f"{numbers['mean_interval_width_points']:.1f} points.", "",
                  "| MACs kept | predicted (mean of seeds) | 90% interval (mean of seeds) | measured (test) | inside "
                  "| the default run's cut (test) | inside |",
                  "|---|---|---|---|---|---|---|"]
        for fraction in sorted({b["fraction"] for b in cells}, reverse=True):
            mine = [b for b in cells if b["fraction"] == fraction]
            low, high = (100 * np.mean([b[k] for b in mine]) for k in ("low", "high"))
            lines.append(f"| {fraction:g} | {100 * np.mean([b['predicted'] for b in mine]):.1f}% | "
                         f"[{low:.1f}, {high:.1f}] | {100 * np.mean([b['measured_test'] for b in mine]):.1f}% | "
                         f"{sum(b['covered'] for b in mine)}/{len(mine)} | "
                         f"{100 * np.mean([b['measured_test_run'] for b in mine]):.1f}% | "
                         f"{sum(b['covered_run'] for b in mine)}/{len(mine)} |")
        lines.append("")
    lines += _unseen_markdown(result)
    lines += ["| network | budget chosen by the evidence (per seed) | 1 point below the base after fine-tuning |",
              "|---|---|---|"]
    for network, choice in result["budget_choice"].items():
        one_point = choice["one_point_below_base_after_fine_tuning"]
        lines.append(f"| {network} | {', '.join(f'{f:.3f}' for f in choice['evidence_chosen'])} | "
                     f"{'not reached on the grid' if one_point is None else f'{one_point:.2f}'} |")
    return "\n".join(lines) + "\n"


def _unseen_markdown(result: dict) -> list[str]:
    """The same calibration with bases trained here on the first training images only."""
    summary = result.get("summary_unseen")
    if not summary:
        return []
    lines = [f"Bases trained on the first training images only (analysis/bases/), the plan measuring its cuts on "
             f"the rest, which they never saw: coverage of the 90% interval over {summary['cells']} cuts "
             f"**{100 * summary['coverage_90']:.0f}%** (the default run's cut: "
             f"{100 * summary['coverage_90_run']:.0f}%); by nominal level "
             + ", ".join(f"{k}: {100 * v:.0f}%" for k, v in summary["reliability"].items()) + ".", "",
             "| base | training images seen | coverage | mean abs error | mean interval width |",
             "|---|---|---|---|---|"]
    for network, numbers in summary["by_network"].items():
        base = result["unseen_bases"][network]
        lines.append(f"| {network} | first {base['train_images']} | {100 * numbers['coverage_90']:.0f}% of "
                     f"{numbers['cells']} | {numbers['mean_abs_error_points']:.1f} points | "
                     f"{numbers['mean_interval_width_points']:.1f} points |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help=f"of {', '.join(NETWORKS)} (the last two: bases trained here, see the docstring)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny subsets (a smoke test of the script)")
    parser.add_argument("--out", default=str(RESULTS / "plan_calibration.json"))
    parser.add_argument("--parts", default=str(RESULTS / "plan_calibration_parts"),
                        help="one file per network (two networks can run side by side); --out merges them")
    parser.add_argument("--figure", default=str(FIGURES / "plan_reliability.png"))
    args = parser.parse_args()
    import torch

    parts = Path(args.parts)
    for network in args.networks.split(","):
        path = parts / f"{network}.json"
        part = json.loads(path.read_text()) if path.is_file() else {"cells": []}
        done = {c["seed"] for c in part["cells"]}
        missing = [seed for seed in range(args.seeds) if seed not in done]
        if missing:  # the run that measures cells names itself; a part read back keeps its own
            part.update({"commit": _common.commit(), **_common.versions(), "torch_threads": torch.get_num_threads(),
                         "argv": sys.argv[1:], "device": "cpu"})
        model = base_model(network, args.quick, parts / "bases" if args.quick else BASES) if missing else None
        for seed in missing:
            part["cells"].append({**plan_cell(network, NETWORKS[network], seed, args.quick, model),
                                  "commit": _common.commit()})  # a resumed part may span commits
            _common.write_json(path, part)
        if network in UNSEEN:  # the budget choice is compared on the shipped bases only
            continue
        if network == "resnet20-fashion-mnist" and not args.quick:  # read from bayes_v2's results
            part["finetune_grid"] = resnet_grid()
            _common.write_json(path, part)
        elif "finetune_grid" not in part:  # measured here
            part["finetune_grid"] = finetune_grid(network, NETWORKS[network], args.seeds, args.quick)
            _common.write_json(path, part)
    merge(parts, Path(args.out), Path(args.figure))


def _budget_choice(part: dict) -> dict:
    return {"evidence_chosen": [c["evidence"]["chosen_fraction"] for c in part["cells"]],
            "one_point_below_base_after_fine_tuning": one_point_budget(part["finetune_grid"]),
            "grid": part["finetune_grid"]}


def merge(parts: Path, out: Path, figure_path: Path) -> None:
    """The networks' part files into one result with its summary and figure."""
    networks = {p.stem: json.loads(p.read_text()) for p in sorted(parts.glob("*.json"))}
    cells = [scored_again(c) for name, part in networks.items() if name not in UNSEEN for c in part["cells"]]
    unseen = [scored_again(c) for name, part in networks.items() if name in UNSEEN for c in part["cells"]]
    result = {"script": "analysis/plan_calibration.py", "commit": _common.commit(), **_common.versions(),
              "runs": {name: {k: part.get(k) for k in ("commit", "torch_threads", "argv", "device")}
                       for name, part in networks.items()},
              "summary": summarise(cells),
              # bases trained here on the first training images only: the plan's held-out images are new to them
              "unseen_bases": {name: asdict(base) for name, base in UNSEEN.items() if name in networks},
              "summary_unseen": summarise(unseen) if unseen else None,
              "cells_unseen": unseen,
              "budget_choice": {name: _budget_choice(part) for name, part in networks.items()
                                if "finetune_grid" in part},
              "cells": cells}
    _common.write_json(out, result)
    figure(result, figure_path)
    print(json.dumps({"summary": result["summary"], "summary_unseen": result["summary_unseen"], "budget_choice": {
        k: {kk: vv for kk, vv in v.items() if kk != "grid"} for k, v in result["budget_choice"].items()}}, indent=2))


if __name__ == "__main__":
    main()
