"""Path-dependence of bayes's width check without fine-tuning: each width rule held for the whole run.

bayes's width check (``bayesprune/bayes/width_check.py``) compares its candidate rules (the posterior's
own widths at the run's cap, tighter caps, uniform widths) by one-shot predictions of the final cut,
while a run without fine-tuning makes three cuts, refitting around each. Stop 42 measured that at one
cut (where the check scores exactly the network kept) bayes leads ``obs`` at 20% of the MACs, and over
three cuts ties it: the gradual path gains more for ``obs``'s uniform widths than for the checked ones.
This script scores each rule *as the path it makes*: per seed, one whole post-training run per rule
(the posterior's widths unchecked under each cap, and uniform widths in the posterior's order; each
rule held at every cut), every final network scored on the held-out training images the width check
reads (the last of the calibration split) and, only to judge the choice, on the test images. The
rule with the best held-out log-likelihood is the path check's choice; its test accuracy is paired
with ``obs`` adapted and with the default ``bayes`` on the same seed (bayes_v2.py's post-training
set-up: 2,000 calibration images, 3 cuts, ``lsq``, adaptive BatchNorm; those rows are run here too,
so every number comes from this commit). Writes analysis/results/width_rule_paths.json.

Usage: python analysis/width_rule_paths.py [--target 0.2] [--seeds 3] [--first-seed 0] [--out F] [--quick]
       python analysis/width_rule_paths.py --merge A.json B.json --out C.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from _common import commit, versions, write_json
from bayesprune.bayes.width_check import CAPS  # the check's tighter caps, each held here for a whole run
from bayesprune.errors import BudgetError
from bayes_v2 import OBS_LSQ, UNCHECKED, default_post, post_training_config

OUT = Path(__file__).resolve().parent / "results" / "width_rule_paths.json"
RULES = {"run": f"{UNCHECKED}{OBS_LSQ}",
         **{f"cap {c:g}": f"{UNCHECKED}{OBS_LSQ}+max_prune_fraction={c:g}" for c in CAPS},
         "uniform": f"bayes@uniform{OBS_LSQ}"}
REFERENCES = {"obs": "obs+reparameterize=lsq", "default": default_post("lsq", True)}
QUICK = ("run", "cap 0.3", "uniform", "obs")  # --quick's smoke cells (cap 0.3 cannot reach 20% in its 2 cuts)


def scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Top-1 accuracy and mean log-likelihood (nats) of ``model`` on ``(x, y)``."""
    from bayesprune.training import scores_per_image

    correct, log_likelihood = scores_per_image(model, x, y, torch.device("cpu"))
    return float(correct.double().mean()), float(log_likelihood.mean())


def run(method: str, target: float, seed: int, quick: bool) -> dict:
    """One post-training run of ``method``: its final network's held-out and test scores."""
    from bayesprune.bayes.width_check import HeldOutImages
    from bayesprune.checkpoint import load_checkpoint
    from bayesprune.criteria.base import Calibration
    from bayesprune.data import load_dataset
    from bayesprune.rounds import run_pruning

    with tempfile.TemporaryDirectory() as tmp:
        config = post_training_config(method, target, seed, f"{tmp}/run", quick)
        summary = run_pruning(config)
        model, _, _ = load_checkpoint(f"{tmp}/run/model.pt")
    data = load_dataset(config.data, config.data_dir).subset(config.train_subset, config.test_subset)
    held = HeldOutImages.of(Calibration(data, torch.device("cpu"), config.batch_size, config.calibration_batches,
                                        config.seed))
    held_accuracy, held_log_likelihood = scores(model, held.x, held.y)
    test_accuracy, _ = scores(model, data.test_x, data.test_y)
    if abs(test_accuracy - summary["final"]["accuracy"]) > 1e-6:  # the saved network is the one the run scored
        raise RuntimeError(f"{method} seed {seed}: saved network {test_accuracy} vs run {summary['final']['accuracy']}")
    return {"method": method, "seed": seed, "accuracy": test_accuracy, "held_out_accuracy": held_accuracy,
            "held_out_log_likelihood": held_log_likelihood, "held_out_images": len(held.y),
            "macs_ratio": summary["final_ratio"]["macs"]}


def summarise(rows: list[dict]) -> dict:
    """Per seed the path check's choice (best held-out log-likelihood among the rules) and the test-best
    rule; over seeds the chosen rule's test accuracy paired with each reference and with each rule."""
    by_seed: dict[int, dict] = {}
    for row in rows:
        by_seed.setdefault(row["seed"], {})[row["label"]] = row
    complete = {s: r for s, r in by_seed.items() if set(RULES) | set(REFERENCES) <= set(r)}
    per_seed, chosen_accuracy = {}, {}
    for seed, cells in sorted(complete.items()):
        reached = [rule for rule in RULES if "unreachable" not in cells[rule]]
        best = max(reached, key=lambda rule: cells[rule]["held_out_log_likelihood"])
        test_best = max(reached, key=lambda rule: cells[rule]["accuracy"])
        chosen_accuracy[seed] = cells[best]["accuracy"]
        per_seed[str(seed)] = {"chosen": best, "test_best": test_best,
                               "regret_points": 100 * (cells[test_best]["accuracy"] - cells[best]["accuracy"]),
                               **{label: 100 * cells[label]["accuracy"] for label in (*reached, *REFERENCES)}}
    out = {"seeds": sorted(complete), "per_seed": per_seed}
    if not complete:
        return out
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else None  # noqa: E731
    out["path_check_mean"] = 100 * statistics.mean(chosen_accuracy.values())
    for label in (*RULES, *REFERENCES):
        if any("unreachable" in complete[s][label] for s in complete):
            continue
        paired = [100 * (chosen_accuracy[s] - complete[s][label]["accuracy"]) for s in complete]
        out[f"path_check_minus_{label}"] = {"mean": statistics.mean(paired), "sd": sd(paired),
                                            "better": sum(p > 1e-9 for p in paired),
                                            "worse": sum(p < -1e-9 for p in paired),
                                            f"{label}_mean": 100 * statistics.mean(complete[s][label]["accuracy"]
                                                                                   for s in complete)}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, default=3, help="seeds first-seed .. seeds-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run of a few cells (CI); writes nothing")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--merge", nargs="+", metavar="RESULT", help="merge complete result files' rows")
    args = parser.parse_args(argv)
    if args.merge:
        stored = [json.loads(Path(p).read_text()) for p in args.merge]
        if len({s["target"] for s in stored}) != 1:
            raise SystemExit("--merge: the files measured different targets")
        rows = [row for s in stored for row in s["rows"]]
        cells = [(r["seed"], r["label"]) for r in rows]
        if len(cells) != len(set(cells)):
            raise SystemExit("--merge: a (seed, rule) cell is in more than one file")
        summary = summarise(rows)
        write_json(Path(args.out), {**stored[0], "rows": rows, "summary": summary, "merged_by": commit(),
                                    "merged_argv": [a for s in stored for a in s.get("merged_argv", [s["argv"]])],
                                    "commits": sorted({c for s in stored for c in s.get("commits", [s["commit"]])})})
        print(json.dumps(summary, indent=1))
        return
    rows = []
    labels = {label: method for label, method in {**RULES, **REFERENCES}.items() if not args.quick or label in QUICK}
    for seed in range(args.first_seed, args.seeds):
        for label, method in labels.items():
            try:
                row = run(method, args.target, seed, args.quick)
            except BudgetError as exc:  # a cap too tight for the target, as the width check skips it
                rows.append({"method": method, "seed": seed, "label": label, "unreachable": str(exc)})
                print(f"seed {seed} {label}: unreachable ({exc})", flush=True)
                continue
            rows.append({**row, "label": label})
            print(f"seed {seed} {label}: test {100 * row['accuracy']:.2f}%, held-out "
                  f"{100 * row['held_out_accuracy']:.2f}% / {row['held_out_log_likelihood']:.4f} nats, "
                  f"MACs {row['macs_ratio']:.3f}", flush=True)
        summary = summarise(rows)
        print(json.dumps(summary.get("per_seed", {}).get(str(seed)), indent=None), flush=True)
        if not args.quick:
            write_json(Path(args.out), {"script": "analysis/width_rule_paths.py", "commit": commit(), **versions(),
                                        "argv": sys.argv[1:], "device": "cpu", "target": args.target,
                                        "setup": "bayes_v2.py post-training", "rules": RULES,
                                        "references": REFERENCES, "rows": rows, "summary": summary})
    print(json.dumps(summarise(rows), indent=1))


if __name__ == "__main__":
    main()
