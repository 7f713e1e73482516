"""Issue 19's numbers: latency speed-up against MACs speed-up, with and without latency-aware
allocation, in PyTorch and onnxruntime, at batch 1 and 64, on both shipped networks.

For each network and budget (50% and 20%) the shipped model is cut in one round (`bayes`, no
fine-tuning: latency does not depend on the weights' values): to a MACs budget
(`--target-macs`), to the same MACs with every layer keeping a multiple of 8 channels (`--round-to 8
--allocation uniform`), to the same MACs with every layer keeping a width at the end of a measured
latency step (`--round-to auto --allocation uniform`: every width timed at batch 64, PyTorch), and to
the same fraction of its measured latency (`--target-latency`, per-layer tables at batch 64,
PyTorch), the last also with `--round-to auto`; both with the final cut timed against the base and
its table target corrected (`--latency-feedback`, the default) and with the table alone
(`+feedback=0`). A control times the base network against an
identical copy of itself (ratio 1 up to the timing noise, which bounds what the other ratios can
resolve). Base and pruned networks are then timed interleaved (bayesprune.deploy.latency: warm-up,
median of the calls) in both runtimes at batch 1 and 64, together with a floor network (every
prunable group cut to one channel): what no channel cut removes.
Reported per cell: MACs speed-up, latency speed-up, their quotient (issue target >= 0.85 at batch 64),
the quotient's Amdahl ceiling from the floor read in the same calls
(:func:`bayesprune.deploy.floor.quotient_ceiling`) and,
for the latency budget, the measured latency ratio against its target (target: within 10%).
Nothing else may run on the machine meanwhile.

Writes analysis/results/latency_<network>.json. Usage: python analysis/latency_benchmark.py [--quick]
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from bayesprune.deploy.floor import floor_network, speedups

import _common  # analysis/_common.py: scripts run from this folder have it on sys.path

RESULTS = Path(__file__).resolve().parent / "results"
NETWORKS = {"smallcnn-mnist5k": "mnist5k", "resnet20-fashion-mnist": "fashion-mnist"}
KINDS = {  # budget kind -> the PruneConfig fields it sets (None: the budget's fraction)
    "macs": {"target_macs": None},
    "macs+round_to=8": {"target_macs": None, "round_to": 8, "allocation": "uniform"},
    "macs+round_to=auto": {"target_macs": None, "round_to": "auto", "allocation": "uniform"},
    "latency": {"target_latency": None},
    "latency+round_to=auto": {"target_latency": None, "round_to": "auto", "allocation": "uniform"},
    # the table alone, without the final cut timed against the base (decision/latency_feedback.py)
    "latency+feedback=0": {"target_latency": None, "latency_feedback": 0},
    "latency+round_to=auto+feedback=0": {"target_latency": None, "round_to": "auto", "allocation": "uniform",
                                         "latency_feedback": 0},
}


def cut(network: str, data: str, budget: dict, quick: bool, tmp: str):
    """The network cut once to ``budget`` (a PruneConfig target field and its value)."""
    from bayesprune.checkpoint import load_checkpoint
    from bayesprune.config import PruneConfig
    from bayesprune.rounds import run_pruning

    config = PruneConfig(model=network, data=data, rounds=1, epochs=0, report=False, progress=False,
                         out=f"{tmp}/{'-'.join(map(str, budget.values()))}", overwrite=True,
                         train_subset=512 if quick else 4096, test_subset=128 if quick else 1000,
                         posterior_draws=20 if quick else 200, latency_grid=3 if quick else 6,
                         latency_batch=8 if quick else 64)
    summary = run_pruning(replace(config, **budget))
    model, _arch, _ = load_checkpoint(Path(config.out) / "model.pt")
    return model.eval(), summary


def timed_cells(label: str, cell: dict, models: dict, macs_ratios: dict, predicted, widths: dict, image: tuple,
                settings) -> list[dict]:
    """``models["pruned"]`` timed against ``models["base"]`` (and the floor network, ``models["floor"]``)
    in every runtime and batch size: one result cell each. ``macs_ratios``: pruned and floor MACs / base."""
    from bayesprune.deploy.latency import whole_network

    macs_ratio = macs_ratios["pruned"]
    cells = []
    for row in whole_network(models, image, settings):
        values = speedups(row, macs_ratio, macs_ratios["floor"])
        cells.append({**cell, "runtime": row["runtime"], "batch": row["batch"], "threads": row["threads"],
                      "macs_ratio": macs_ratio, **values, "latency_ratio": 1 / values["latency_speedup"],
                      "predicted_latency_ratio": predicted, "base_ms": row["base"], "pruned_ms": row["pruned"],
                      "floor_ms": row["floor"], "widths": widths})
        print(f"{label}: {row['runtime']} batch {row['batch']}: MACs x{1 / macs_ratio:.2f}, "
              f"latency x{values['latency_speedup']:.2f} (quotient {values['quotient']:.2f}, "
              f"ceiling {values['quotient_ceiling']:.2f})", flush=True)
    return cells


def markdown(result: dict) -> str:
    """The cells as a README table (analysis/readme_tables.py)."""
    lines = ["| budget | kind | runtime | batch | MACs speed-up | latency speed-up | quotient (Amdahl ceiling) | "
             "latency ratio (table's prediction; the run's own timing) |", "|---|---|---|---|---|---|---|---|"]
    for cell in result["cells"]:
        if "unreachable" in cell:
            lines.append(f"| {cell['budget']:g} | {cell['budget_kind']} | - | - | - | - | - | unreachable: "
                         f"{cell['unreachable'].split(':')[0]} |")
            continue
        predicted = [f"{cell[key]:.3f}" for key in ("predicted_latency_ratio", "feedback_measured_ratio")
                     if cell.get(key)]
        ceiling = f" ({cell['quotient_ceiling']:.2f})" if "quotient_ceiling" in cell else ""
        lines.append(f"| {cell['budget']:g} | {cell['budget_kind']} | {cell['runtime']} | {cell['batch']} | "
                     f"{cell['macs_speedup']:.2f}x | {cell['latency_speedup']:.2f}x | "
                     f"{cell['quotient']:.2f}{ceiling} | "
                     f"{cell['latency_ratio']:.3f}" + (f" ({'; '.join(predicted)})" if predicted else "") + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--budgets", default="0.5,0.2")
    parser.add_argument("--kinds", default=",".join(KINDS), help="which budgets of KINDS to cut to")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke test of the script)")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the result files")
    args = parser.parse_args()
    from bayesprune.deploy.latency import LatencySettings
    from bayesprune.groups import count_macs_params
    from bayesprune.pretrained import resolve_model
    from bayesprune.data import load_dataset
    from bayesprune.errors import BudgetError

    settings = LatencySettings((1, 8) if args.quick else (1, 64), ("torch", "onnxruntime"), 2 if args.quick else 5,
                               3 if args.quick else args.repeats)
    for network in args.networks.split(","):
        data = load_dataset(NETWORKS[network])
        base = resolve_model(network, data).model.eval()
        image = tuple(data.test_x.shape[1:])
        base_macs = count_macs_params(base, data.test_x[:1])[0]
        floor = floor_network(base, data.test_x[:1])
        floor_macs = count_macs_params(floor, data.test_x[:1])[0] / base_macs
        # the control: the base against an identical copy, what the noise alone moves a ratio by
        cells = timed_cells(f"{network} control", {"budget": 1.0, "budget_kind": "control (identical copy)"},
                            {"base": base, "pruned": copy.deepcopy(base), "floor": floor},
                            {"pruned": 1.0, "floor": floor_macs}, None, {}, image, settings)
        with tempfile.TemporaryDirectory() as tmp:
            for fraction in (float(b) for b in args.budgets.split(",")):
                for kind in args.kinds.split(","):
                    budget = {key: (fraction if value is None else value) for key, value in KINDS[kind].items()}
                    try:
                        model, summary = cut(network, NETWORKS[network], budget, args.quick, tmp)
                    except BudgetError as exc:  # a miss, reported as one
                        cells.append({"budget": fraction, "budget_kind": kind, "unreachable": str(exc)})
                        print(f"{network} {kind} {fraction}: unreachable: {exc}", flush=True)
                        continue
                    macs = count_macs_params(model, data.test_x[:1])[0]
                    cell = {"budget": fraction, "budget_kind": kind}
                    if "measured_latency_fraction" in summary["budget"]:  # what the run's own timing measured
                        cell["feedback_measured_ratio"] = summary["budget"]["measured_latency_fraction"]
                    cells += timed_cells(f"{network} {kind} {fraction}", cell,
                                         {"base": base, "pruned": model, "floor": floor},
                                         {"pruned": macs / base_macs, "floor": floor_macs},
                                         summary["final_ratio"].get("latency"),
                                         {g: w[1] for g, w in summary.get("widths", {}).items()}, image, settings)
        result = {"script": "analysis/latency_benchmark.py", "network": network, "commit": _common.commit(),
                  **_common.versions(), "torch_threads": torch.get_num_threads(), "argv": sys.argv[1:],
                  "device": "cpu", "settings": {"batch_sizes": settings.batch_sizes, "warmup": settings.warmup,
                                                "repeats": settings.repeats}, "cells": cells}
        _common.write_json(Path(args.out) / f"latency_{network}{'_quick' if args.quick else ''}.json", result)


if __name__ == "__main__":
    main()
