"""Joint search-and-train against prune-after-train, both from random weights, at equal epochs and MACs.

- ``search-train``: ``bayesprune run --method search-train --from-scratch`` with one round:
  ``--search-epochs S`` of training while the threshold network prunes, then ``--epochs F`` of
  fine-tuning of the cut network.
- ``train-then-l1``: the same architecture re-initialised with the same seed, trained ``S`` epochs
  by :func:`bayesprune.training.fit` (same optimiser and schedule), then one ``l1`` round to the
  same MACs target with ``F`` epochs of fine-tuning.

Both consume ``S + F`` epochs. Writes analysis/results/search_train_scratch_<model>.json.
Usage: python analysis/search_train_scratch.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _common import commit, versions

HERE = Path(__file__).resolve().parent


def search_train(args, seed: int, tmp: str) -> dict:
    from bayesprune.config import PruneConfig
    from bayesprune.rounds import run_pruning

    summary = run_pruning(PruneConfig(
        model=args.model, data=args.data, criterion="search-train", from_scratch=True, rounds=1,
        search_epochs=args.search_epochs, epochs=args.epochs, target_macs=args.target, train_subset=args.train_subset,
        test_subset=args.test_subset, seed=seed, device="cpu", progress=False, report=False, out=f"{tmp}/st"))
    return _row(summary)


def train_then_l1(args, seed: int, tmp: str) -> dict:
    from bayesprune.checkpoint import save_checkpoint
    from bayesprune.config import PruneConfig
    from bayesprune.data import load_dataset
    from bayesprune.pretrained import resolve_model
    from bayesprune.rounds import run_pruning
    from bayesprune.training import FitConfig, fit, seed_everything

    generator = seed_everything(seed)
    data = load_dataset(args.data).subset(args.train_subset, args.test_subset)
    resolved = resolve_model(args.model, data)
    torch.manual_seed(seed)  # the same re-initialisation as --from-scratch
    for module in resolved.model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    fit(resolved.model, data, FitConfig(epochs=args.search_epochs), generator, torch.device("cpu"), progress=False)
    save_checkpoint(f"{tmp}/trained.pt", resolved.model, resolved.arch)
    summary = run_pruning(PruneConfig(
        model=f"{tmp}/trained.pt", data=args.data, criterion="l1", rounds=1, epochs=args.epochs,
        target_macs=args.target, train_subset=args.train_subset, test_subset=args.test_subset, seed=seed,
        device="cpu", progress=False, report=False, out=f"{tmp}/l1"))
    return _row(summary)


def _row(summary: dict) -> dict:
    return {"accuracy": summary["final"]["accuracy"], "accuracy_after_cut": summary["rounds"][0]["accuracy_after_cut"],
            "macs_ratio": summary["final_ratio"]["macs"]}


def markdown(result: dict) -> str:
    """The README's table: mean (sd) over seeds per arm."""
    a = result["arguments"]
    lines = [f"From random weights, {a['model']}'s architecture, {a['target']:g} of the MACs, "
             f"{a['search_epochs']:g} + {a['epochs']:g} epochs ({result['label']}):", "",
             "| method | accuracy after fine-tuning | right after the cut | MACs ratio | epochs | seeds |",
             "|---|---|---|---|---|---|"]
    for name, v in result["summary"].items():
        rows = [r for r in result["rows"] if r["method"] == name]
        after_cut = statistics.mean(100 * r["accuracy_after_cut"] for r in rows)
        macs = statistics.mean(r["macs_ratio"] for r in rows)
        accuracy = f"{v['accuracy_mean']:.2f}" + (f" ± {v['accuracy_sd']:.2f}" if v["accuracy_sd"] else "")
        lines.append(f"| `{name}` | {accuracy}% | {after_cut:.2f}% | {macs:.3f} | {v['epochs']:g} | {v['seeds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-fashion-mnist", help="its architecture only: weights are reset")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--search-epochs", type=float, default=3.0)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=4000)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (CI)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.quick:
        args.model, args.data, args.seeds, args.search_epochs, args.epochs = "smallcnn-mnist5k", "mnist5k", 1, 0.2, 0.1
        args.train_subset, args.test_subset = 256, 128
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp()) / "quick.json" if args.quick
                                           else HERE / "results" / f"search_train_scratch_{args.model}.json")
    code = commit()
    rows = []
    for seed in range(args.seeds):
        for name, arm in (("search-train", search_train), ("train-then-l1", train_then_l1)):
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                row = {"method": name, "seed": seed, **arm(args, seed, tmp), "seconds": time.perf_counter() - start}
            rows.append(row)
            print(f"seed {seed} {name}: {100 * row['accuracy']:.2f}% "
                  f"(after the cut {100 * row['accuracy_after_cut']:.2f}%), MACs {row['macs_ratio']:.3f}, "
                  f"{row['seconds']:.0f} s", flush=True)
    summary = {}
    for name in ("search-train", "train-then-l1"):
        accuracies = [100 * r["accuracy"] for r in rows if r["method"] == name]
        summary[name] = {"accuracy_mean": statistics.mean(accuracies),
                         "accuracy_sd": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
                         "epochs": round(args.search_epochs + args.epochs, 6), "seeds": len(accuracies)}
    result = {"script": "analysis/search_train_scratch.py", "arguments": vars(args), "device": "cpu",
              "label": "CPU-sized (2 cores): subsets, few epochs", "summary": summary, "rows": rows, "commit": code,
              **versions(), "torch_threads": torch.get_num_threads()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
