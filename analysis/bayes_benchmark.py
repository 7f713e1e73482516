"""`bayes` against l1, bn-scale and random on one shared base network, same budget, rounds,
fine-tune budget and seeds; plus the wall time of one SVI fit against one fine-tune epoch.

Default: ResNet-20 on Fashion-MNIST (the shipped base) at 50% MACs, 3 seeds, CPU-sized (a
training subset for fine-tuning and SVI, a test subset for accuracy; see the arguments written into
the result). Writes analysis/results/bayes_vs_baselines_<model>.json.

    python analysis/bayes_benchmark.py            # the committed CPU-sized run
    python analysis/bayes_benchmark.py --quick    # smoke test (CI), writes to a temp file
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-fashion-mnist")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--methods", default="bayes,bayes-global,l1,bn-scale,random",
                        help="criteria; bayes-global = bayes with the global MAC-aware decision "
                             "(the others use the per-layer 'uniform' allocation)")
    parser.add_argument("--target-macs", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--train-subset", type=int, default=8000)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--svi-steps", type=int, default=150)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run on mnist5k")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.model, args.data, args.seeds, args.rounds = "smallcnn-mnist5k", "mnist5k", 1, 1
        args.epochs, args.train_subset, args.test_subset, args.svi_steps = 0.1, 256, 128, 5
    out = Path(args.out) if args.out else RESULTS / f"bayes_vs_baselines_{args.model}.json"
    if args.quick and not args.out:
        out = Path(tempfile.mkdtemp()) / "quick.json"

    from bayesprune.rounds import PruneConfig, run_pruning
    import torch_pruning as tp

    rows = []
    for seed in range(args.seeds):
        for method in args.methods.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                config = PruneConfig(model=args.model, data=args.data, criterion=method.removesuffix("-global"),
                                     allocation="global" if method.endswith("-global") else "uniform",
                                     target_macs=args.target_macs,
                                     rounds=args.rounds, epochs=args.epochs, train_subset=args.train_subset,
                                     test_subset=args.test_subset, svi_steps=args.svi_steps, seed=seed,
                                     device="cpu", out=f"{tmp}/run", progress=False)
                start = time.perf_counter()
                summary = run_pruning(config)
            rows.append({"method": method, "seed": seed, "accuracy": summary["final"]["accuracy"],
                         "accuracy_after_final_cut": summary["rounds"][-1]["accuracy_after_cut"],
                         "macs_ratio": summary["final_ratio"]["macs"], "params_ratio": summary["final_ratio"]["params"],
                         "base_accuracy": summary["base"]["accuracy"], "seconds": time.perf_counter() - start,
                         "decision_seconds": [r["decision_seconds"] for r in summary["rounds"]],
                         "finetune_seconds": [r["finetune_seconds"] for r in summary["rounds"]]})
            print(json.dumps(rows[-1]), flush=True)

    def mean_sd(values):
        return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}

    methods = {}
    for method in args.methods.split(","):
        mine = [r for r in rows if r["method"] == method]
        methods[method] = {key: mean_sd([r[key] for r in mine])
                           for key in ("accuracy", "accuracy_after_final_cut", "macs_ratio", "seconds")}
    bayes_rows = [r for r in rows if r["method"].startswith("bayes")]
    svi_vs_epoch = None
    if bayes_rows:  # decision time of bayes = SVI + draws + decision; fine-tune time = args.epochs epochs
        per_round = [d / (f / args.epochs) for r in bayes_rows for d, f in zip(r["decision_seconds"], r["finetune_seconds"])]
        svi_vs_epoch = mean_sd(per_round)
    result = {"arguments": vars(args), "rows": rows, "methods": methods,
              "bayes_decision_seconds_per_finetune_epoch": svi_vs_epoch,
              "environment": {"python": platform.python_version(), "torch": torch.__version__,
                              "torch_pruning": tp.__version__, "device": "cpu", "threads": torch.get_num_threads(),
                              "machine": platform.machine()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    for method, stats in methods.items():
        print(f"{method:<10} accuracy {stats['accuracy']['mean']:.4f} ± {stats['accuracy']['sd']:.4f}  "
              f"after cut {stats['accuracy_after_final_cut']['mean']:.4f}  MACs {stats['macs_ratio']['mean']:.3f}")


if __name__ == "__main__":
    main()
