"""Issue 16, pruning without fine-tuning: why `bayes`'s own widths lose to uniform widths there.

`bayes_v2.py` found that without fine-tuning (3 rounds of cuts, `--reparameterize lsq`) `bayes`
ends at 31% at 20% of the MACs where `l2` with uniform widths ends at 58% and `taylor` at 67%. Here
one cut (no rounds, so no carried posterior and no Fisher taken away from a trained mode) to 20% of
the MACs of the shipped ResNet-20 on Fashion-MNIST, 2,000 training images as calibration data,
`lsq` compensation, the full test set, 3 seeds (the posterior's draws), of:

- `bayes-unchecked` (`--criterion-option check_widths=false`): the posterior's own widths, each
  draw's cut priced by its layer's Fisher block (channels of one layer interact, layers add up);
- `bayes`: the default, the same with its widths checked on held-out training images
  (``bayes/width_check.py``: tighter caps and uniform widths are tried, the best held-out
  log-likelihood wins beyond its noise);
- `bayes-cross-layer` (`--criterion-option cross_layer=true`, unchecked): the same posterior, each draw's cut
  built greedily with the *whole* empirical gate Fisher ``N mean_i g_i g_i^T`` over every layer,
  so removing channels of two layers that hurt the same examples costs more than the sum of the
  two (the quadratic model of the loss with its cross-layer terms; ``fisher.cross_layer_priority``);
- `bayes@uniform`: uniform widths, channels by L2 norm inside the layers (exactly `l2`);
- `taylor`: uniform widths, channels by the Taylor score.

Per cell: test accuracy right after the cut, MACs kept and each layer's width.
Writes analysis/results/post_training_widths.json.
Usage: python analysis/post_training_widths.py [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import _common

RESULTS = Path(__file__).resolve().parent / "results"
SETUP = {"model": "resnet20-fashion-mnist", "data": "fashion-mnist", "target_macs": 0.2, "rounds": 1, "epochs": 0.0,
         "train_subset": 2000, "test_subset": None, "max_prune_fraction": 0.9, "calibration_batches": 8,
         "reparameterize": "lsq", "adapt_batchnorm": False}  # measured so; epochs 0 adapts by default since stop 42
METHODS = ("bayes-unchecked", "bayes", "bayes-cross-layer", "bayes@uniform", "taylor")
REFERENCE = "bayes-unchecked"
OPTIONS = {"bayes-unchecked": {"check_widths": False},
           "bayes": {"check_z": 2.0},  # the check's tie rule as measured (epochs 0 takes its best since stop 42)
           "bayes-cross-layer": {"cross_layer": True, "check_widths": False}}


def run_cell(method: str, seed: int, setup: dict) -> dict:
    from bayesprune.config import PruneConfig
    from bayesprune.report.load import load_run
    from bayesprune.rounds import run_pruning

    criterion, _, allocation = method.partition("@")
    options = {**setup, **({"allocation": allocation} if allocation else {})}
    if criterion in OPTIONS:
        criterion, options["criterion_options"] = "bayes", OPTIONS[criterion]
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_pruning(PruneConfig(criterion=criterion, seed=seed, device="cpu", progress=False, report=False,
                                          out=f"{tmp}/run", **options))
        widths = {k: v[1] for k, v in load_run(Path(tmp) / "run").rounds[-1]["widths"].items()}  # the last cut's
    return {"method": method, "seed": seed, "accuracy": summary["final"]["accuracy"],
            "macs_ratio": summary["final_ratio"]["macs"], "widths": widths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small CNN on 256 images, 1 seed (smoke test)")
    parser.add_argument("--out", default=str(RESULTS / "post_training_widths.json"))
    args = parser.parse_args()
    setup, seeds, out = dict(SETUP), 3, Path(args.out)
    if args.quick:
        setup.update(model="smallcnn-mnist5k", data="mnist5k", train_subset=256, test_subset=128,
                     calibration_batches=2)
        seeds, out = 1, Path(tempfile.mkdtemp()) / "post_training_widths.json"
    rows = []
    for seed in range(seeds):
        for method in METHODS:
            rows.append(run_cell(method, seed, setup))
            print(f"seed {seed} {method}: {100 * rows[-1]['accuracy']:.2f}% at {rows[-1]['macs_ratio']:.3f} "
                  f"of the MACs", flush=True)
    reference = {r["seed"]: r["accuracy"] for r in rows if r["method"] == REFERENCE}
    summary = {}
    for method in METHODS:
        cells = [r for r in rows if r["method"] == method]
        summary[method] = {**_common.paired_accuracy(cells, reference, scale=100),
                           "macs_ratio_mean": statistics.mean(r["macs_ratio"] for r in cells),
                           "widths_seed0": cells[0]["widths"]}
    result = {"script": "analysis/post_training_widths.py", "commit": _common.commit(), **_common.versions(),
              "argv": sys.argv[1:], "device": "cpu", "setup": setup, "seeds": list(range(seeds)),
              "reference": REFERENCE, "rows": rows, "summary": summary}
    _common.write_json(out, result)
    print(markdown(result))


def markdown(result: dict) -> str:
    """The README table: per method, accuracy right after the one cut and the paired difference."""
    layers = list(result["summary"][REFERENCE]["widths_seed0"])
    lines = [f"| method | accuracy after the cut (mean ± sd) | paired vs `{result['reference']}` (points) "
             f"| MACs kept | widths, seed 0 ({', '.join(layers)}) |", "|---|---|---|---|---|"]
    for method, v in result["summary"].items():
        widths = "/".join(str(v["widths_seed0"].get(layer, "-")) for layer in layers)
        paired = "-" if method == result["reference"] else f"{v['paired_mean']:+.2f} ± {v['paired_sd']:.2f}"
        lines.append(f"| `{method}` | {v['accuracy_mean']:.2f}% ± {v['accuracy_sd']:.2f}% | {paired} "
                     f"| {v['macs_ratio_mean']:.3f} | {widths} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
