"""What widths at latency steps cost in accuracy: `bayes` with uniform widths, plain (`bayes-uniform`),
keeping multiples of 8 channels (`bayes-round-8`) and keeping widths at measured latency steps
(`bayes-round-auto`), beside `bayes`'s own widths (`bayes`), at 50% and 20% of the MACs, 3 seeds,
through `bayesprune compare` with the default run's settings (the shipped small CNN on MNIST 5k,
3 rounds, 1 epoch each). Reported per cell: accuracy after the last fine-tuning (and right after the
final cut), MACs kept, and the
final network's PyTorch latency at batch 64 against the base (interleaved, median of 20 calls; run
with nothing else on the machine); paired accuracy differences against `bayes-uniform` with their sd
over seeds. Writes analysis/results/round_to_accuracy.json.
Usage: python analysis/round_to_accuracy.py [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import _common  # analysis/_common.py: scripts run from this folder have it on sys.path

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ["bayes-uniform", "bayes-round-8", "bayes-round-auto", "bayes"]
REFERENCE = "bayes-uniform"


def latency_ratio(base, model, image: tuple, quick: bool) -> float:
    from bayesprune.deploy.latency import LatencySettings, whole_network

    settings = LatencySettings((8 if quick else 64,), ("torch",), 2 if quick else 5, 3 if quick else 20)
    (row,) = whole_network({"base": base, "pruned": model}, image, settings)
    return row["pruned"]["median_ms"] / row["base"]["median_ms"]


def markdown(result: dict) -> str:
    reference = result.get("reference", REFERENCE)
    after_cut = all("after_final_cut_mean" in cell for methods in result["summary"].values()
                    for cell in methods.values())  # results written before the column existed lack it
    lines = [f"| budget | method | accuracy (mean ± sd) | paired vs `{reference}` (points) | "
             + ("right after the final cut | " if after_cut else "") + "MACs kept | latency, batch 64 |",
             "|---|---|---|---|" + ("---|" if after_cut else "") + "---|---|"]
    for target, methods in result["summary"].items():
        for method, cell in methods.items():
            paired = ("-" if method == reference else
                      f"{cell['paired_mean'] * 100:+.2f} ± {cell['paired_sd'] * 100:.2f}")
            lines.append(f"| {target} | `{method}` | {cell['accuracy_mean']:.2%} ± {cell['accuracy_sd']:.2%} | "
                         f"{paired} | " + (f"{cell['after_final_cut_mean']:.2%} | " if after_cut else "")
                         + f"{cell['macs_ratio_mean']:.3f} | {cell['latency_ratio_mean']:.2f}x |")
    return "\n".join(lines) + "\n"


def variant_grid(script: str, methods: list[str], reference: str, argv: list[str] | None = None) -> None:
    """Run ``methods`` (compare names) on the default run's set-up, 3 seeds at 50% and 20% of the
    MACs, time each final network against the base, and write ``results/<script stem>.json``."""
    parser = argparse.ArgumentParser(description=f"{script}: {', '.join(methods)} against {reference}")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / f"{Path(script).stem}.json"))
    args = parser.parse_args(argv)
    from bayesprune.checkpoint import load_checkpoint
    from bayesprune.compare import cell_key, run_grid
    from bayesprune.config import PruneConfig
    from bayesprune.data import load_dataset
    from bayesprune.pretrained import resolve_model

    targets = [0.5] if args.quick else [0.5, 0.2]
    seeds = 1 if args.quick else 3
    base_config = PruneConfig(progress=False, report=False, **({"train_subset": 512, "test_subset": 128,
                                                                 "latency_batch": 8} if args.quick else {}))
    data = load_dataset(base_config.data)
    base = resolve_model(base_config.model, data).model.eval()
    image = tuple(data.test_x.shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_grid(base_config, methods, targets, seeds, tmp, progress=not args.quick)
        for row in rows:
            model, _, _ = load_checkpoint(Path(tmp) / "runs" / cell_key(row["method"], row["target"], row["seed"])
                                          / "model.pt")
            row["latency_ratio"] = latency_ratio(base, model.eval(), image, args.quick)
    summary = {}
    for target in targets:
        summary[f"{target:g}"] = {}
        paired_to = {r["seed"]: r["accuracy"] for r in rows if r["target"] == target and r["method"] == reference}
        for method in methods:
            cells = [r for r in rows if r["target"] == target and r["method"] == method]
            summary[f"{target:g}"][method] = {
                **_common.paired_accuracy(cells, paired_to),
                "macs_ratio_mean": statistics.mean(r["macs_ratio"] for r in cells),
                "after_final_cut_mean": statistics.mean(r["accuracy_after_final_cut"] for r in cells),
                "latency_ratio_mean": statistics.mean(r["latency_ratio"] for r in cells)}
    result = {"script": script, "commit": _common.commit(), **_common.versions(), "argv": sys.argv[1:],
              "device": "cpu", "seeds": list(range(seeds)), "targets": targets, "reference": reference,
              "rows": rows, "summary": summary}
    _common.write_json(Path(args.out), result)
    print(markdown(result))


if __name__ == "__main__":
    variant_grid("analysis/round_to_accuracy.py", METHODS, REFERENCE)
