"""Iterative Bayesian pruning against one-shot Bayes and l1, plus its ablations, on one base network.

Every method prunes the same shipped network to the same MACs budget with the same fine-tune
budget per round and the same seeds. Methods (``--methods``, comma-separated):

- ``bayes-iterative``: the default of ``bayesprune run`` (rounds, carried posterior, predictions,
  annealed masks, reparameterization);
- ``bayes-oneshot``: one round, same posterior and reparameterization;
- any other criterion by name (``l1``, ``bn-scale``, ``taylor``, ...): same rounds and the same
  bias compensation;
- ablations (``bayesprune.compare.VARIANTS``): ``bayes-no-annealing``, ``bayes-no-carry``
  (forgetting 0: refit each round), ``bayes-no-reparam``, ``bayes-global`` (the global MAC-aware
  decision instead of per-layer counts), ``bayes-expand`` (Net2Wider x1.5 first, same final MACs
  of the base).

Reported per method: final accuracy (mean ± sd over seeds), accuracy right after each cut with and
without reparameterization, and for the Bayes methods round 1's prediction AUROC/Brier against
the final network. Default: ResNet-20 on Fashion-MNIST at 50% MACs, CPU-sized (train/test
subsets, written into the result). Writes analysis/results/iterative_<model>.json.

    python analysis/iterative_benchmark.py                    # the committed CPU-sized run
    python analysis/iterative_benchmark.py --quick            # smoke test (CI), temp file
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import _common  # analysis/_common.py: scripts run from this folder have it on sys.path

import torch

RESULTS = Path(__file__).resolve().parent / "results"

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-fashion-mnist")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--methods", default="bayes-iterative,bayes-oneshot,l1")
    parser.add_argument("--target-macs", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--train-subset", type=int, default=8000)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--svi-steps", type=int, default=150)
    parser.add_argument("--chains", type=int, default=1,
                        help="independent SVI fits per round (the committed results used 1)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run on mnist5k")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    methods = args.methods.split(",")
    from bayesprune.compare import method_settings
    from bayesprune.errors import BudgetError

    try:
        [method_settings(m) for m in methods]
    except BudgetError as exc:
        parser.error(str(exc))
    if args.quick:
        args.model, args.data, args.seeds, args.rounds = "smallcnn-mnist5k", "mnist5k", 1, 2
        args.epochs, args.train_subset, args.test_subset, args.svi_steps = 0.1, 256, 128, 5
    out = Path(args.out) if args.out else RESULTS / f"iterative_{args.model}.json"
    if args.quick and not args.out:
        out = Path(tempfile.mkdtemp()) / "quick.json"

    import torch_pruning as tp

    from bayesprune.config import PruneConfig
    from bayesprune.rounds import run_pruning

    commit = _common.commit()  # the code the numbers come from, taken before any run
    rows = []
    for seed in range(args.seeds):
        for method in methods:
            settings = {"model": args.model, "data": args.data, "target_macs": args.target_macs,
                        "rounds": args.rounds, "epochs": args.epochs, "train_subset": args.train_subset,
                        "test_subset": args.test_subset, "svi_steps": args.svi_steps, "seed": seed,
                        "chains": args.chains, "device": "cpu", "progress": False, "report": False,
                        **method_settings(method)}
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                summary = run_pruning(PruneConfig(**settings, out=f"{tmp}/run"))
            rounds = summary["rounds"]
            rows.append({"method": method, "seed": seed, "accuracy": summary["final"]["accuracy"],
                         "macs_ratio": summary["final_ratio"]["macs"], "params_ratio": summary["final_ratio"]["params"],
                         "base_accuracy": summary["base"]["accuracy"], "expanded": summary["expanded"],
                         "seconds": time.perf_counter() - start,
                         **{key: [r[key] for r in rounds] for key in (
                             "accuracy_after_cut", "accuracy_after_cut_plain", "prediction_auroc",
                             "prediction_brier", "decision_seconds", "finetune_seconds")}})
            print(json.dumps(rows[-1]), flush=True)

    def mean_sd(values):
        values = [v for v in values if v is not None]
        if not values:
            return None
        return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}

    summary_by_method = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        summary_by_method[method] = {
            "accuracy": mean_sd([r["accuracy"] for r in mine]),
            "macs_ratio": mean_sd([r["macs_ratio"] for r in mine]),
            "round1_accuracy_after_cut": mean_sd([r["accuracy_after_cut"][0] for r in mine]),
            "round1_accuracy_after_cut_plain": mean_sd([r["accuracy_after_cut_plain"][0] for r in mine]),
            "round1_prediction_auroc": mean_sd([r["prediction_auroc"][0] for r in mine]),
            "round1_prediction_brier": mean_sd([r["prediction_brier"][0] for r in mine]),
            "seconds": mean_sd([r["seconds"] for r in mine])}
    result = {"arguments": vars(args), "methods": {m: method_settings(m) for m in methods}, "rows": rows,
              "summary": summary_by_method,
              "environment": {"python": platform.python_version(), "torch": torch.__version__,
                              "torch_pruning": tp.__version__, "device": "cpu", "threads": torch.get_num_threads(),
                              "machine": platform.machine(), "commit": commit}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    for method, stats in summary_by_method.items():
        auroc = stats["round1_prediction_auroc"]
        print(f"{method:<20} accuracy {stats['accuracy']['mean']:.4f} ± {stats['accuracy']['sd']:.4f}  "
              f"MACs {stats['macs_ratio']['mean']:.3f}"
              + (f"  round-1 AUROC {auroc['mean']:.3f}" if auroc else ""))


if __name__ == "__main__":
    main()
