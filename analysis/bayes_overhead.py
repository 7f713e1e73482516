"""What the Bayesian pass costs (issue 16: "at most 15% over plain fine-tuning"): the default ``bayes``
against ``l2`` (no statistics, no posterior) on ``bayes_v2.py``'s set-up, one after the other in this
process with every thread, so that neither shares the CPU with the other.

Per run: wall seconds and, summed over rounds, the seconds of the statistics (gate gradients), the
decision (posterior, cut, width check, reparameterization) and fine-tuning. Per seed: ``overhead``,
``bayes``'s wall time over ``l2``'s, minus 1 (fine-tuning times alone move by about 5% between two
runs of the same thing); ``extra_pass``, the statistics and decision seconds ``bayes`` spends
beyond ``l2``'s, over ``l2``'s wall time (the cost of the Bayesian pass, without that noise); and
``pass_share``, ``bayes``'s statistics and decision seconds over its own fine-tuning seconds. A
warm-up cut runs first, so that neither method pays this process's one-time imports.

Writes analysis/results/bayes_overhead.json.
Usage: python analysis/bayes_overhead.py [--seeds 2] [--target 0.5] [--reparameterize mean] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import commit, versions, write_json
from bayes_v2 import SETUP

OUT = Path(__file__).resolve().parent / "results" / "bayes_overhead.json"
METHODS = ("bayes", "l2")
PHASES = ("statistics_seconds", "decision_seconds", "finetune_seconds")


def run(method: str, setup: dict, target: float, seed: int, reparameterize: str) -> dict:
    from bayesprune.config import PruneConfig
    from bayesprune.rounds import run_pruning

    options = {k: setup[k] for k in ("model", "data", "rounds", "epochs", "lr", "batch_size", "max_prune_fraction",
                                     "calibration_batches")}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_pruning(PruneConfig(criterion=method, seed=seed, device="cpu", progress=False, report=False,
                                          out=f"{tmp}/run", target_macs=target, train_subset=setup["train_images"],
                                          test_subset=setup["test_images"] or None, reparameterize=reparameterize,
                                          **options))
        wall = time.perf_counter() - start
    phases = {p: sum(r[p] for r in summary["rounds"]) for p in PHASES}
    return {"method": method, "seed": seed, "wall_seconds": wall, **phases, "accuracy": summary["final"]["accuracy"],
            "macs_ratio": summary["final_ratio"]["macs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--reparameterize", help="the run's --reparameterize (both methods; default: the run's)")
    parser.add_argument("--quick", action="store_true", help="a tiny set-up (CI smoke test); writes to --out")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    import torch
    from bayesprune.config import PruneConfig

    args.reparameterize = args.reparameterize or PruneConfig().reparameterize
    setup = dict(SETUP)
    if args.quick:
        setup.update(model="smallcnn-mnist5k", data="mnist5k", train_images=512, test_images=256, rounds=1,
                     epochs=0.25, calibration_batches=2)
    run("bayes", {**setup, "train_images": 512, "test_images": 256, "rounds": 1, "epochs": 0}, args.target, 0,
        args.reparameterize)  # warm-up: imports and first-call costs, paid by neither method
    rows = []
    for seed in range(args.seeds):
        for method in METHODS:
            rows.append(run(method, setup, args.target, seed, args.reparameterize))
            print(f"seed {seed} {method}: {rows[-1]['wall_seconds']:.1f} s", flush=True)
    by = {(r["method"], r["seed"]): r for r in rows}
    overhead = [by["bayes", s]["wall_seconds"] / by["l2", s]["wall_seconds"] - 1 for s in range(args.seeds)]
    passes = {key: row["statistics_seconds"] + row["decision_seconds"] for key, row in by.items()}
    share = [passes["bayes", s] / by["bayes", s]["finetune_seconds"] for s in range(args.seeds)]
    extra = [(passes["bayes", s] - passes["l2", s]) / by["l2", s]["wall_seconds"] for s in range(args.seeds)]
    result = {"script": "analysis/bayes_overhead.py", "setup": setup, "target_macs": args.target,
              "reparameterize": args.reparameterize, "rows": rows,
              "overhead_mean": statistics.mean(overhead), "overhead_per_seed": overhead,
              "extra_pass_mean": statistics.mean(extra), "extra_pass_per_seed": extra,
              "pass_share_mean": statistics.mean(share), "pass_share_per_seed": share,
              "commit": commit(), "torch_threads": torch.get_num_threads(), **versions()}
    write_json(Path(args.out), result)
    print(f"bayes over l2: {100 * result['overhead_mean']:+.1f}% wall; its extra statistics and decision "
          f"{100 * result['extra_pass_mean']:.1f}% of l2's wall time")


if __name__ == "__main__":
    main()
