"""The accuracy-at-budget figure: every method of the committed ``tp_compare`` result files, per budget.

Left column: accuracy after fine-tuning (mean over seeds, bar = one sd); right column: accuracy
right after the final cut (before any fine-tuning), the quantity annealed masks and compensation
are meant to raise. One row per MACs budget. A method measured in several files with the same
set-up (e.g. ``tp-l2``, a reference in each) is drawn from the first file that has it.
Usage: python analysis/accuracy_figure.py [RESULT_JSON ...] [--out PNG]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
FINE_TUNED_RANGE = 8.0  # points shown left of the best fine-tuned accuracy
RESULTS = ("tp_compare_resnet20-fashion-mnist.json", "tp_compare_more_baselines_resnet20-fashion-mnist.json",
           "tp_compare_training_time_resnet20-fashion-mnist.json", "tp_compare_20pct_resnet20-fashion-mnist.json",
           "tp_compare_more_baselines_20pct_resnet20-fashion-mnist.json",
           "tp_compare_bayes_global_resnet20-fashion-mnist.json")


def merged_summary(results: list[dict]) -> dict[str, dict[str, dict]]:
    """``{budget: {method: summary}}`` over the files; the first file with a (budget, method) wins."""
    merged: dict[str, dict[str, dict]] = {}
    for result in results:
        for budget, methods in result["summary"].items():
            for method, values in methods.items():
                merged.setdefault(budget, {}).setdefault(method, values)
    return merged


def plot(merged: dict[str, dict[str, dict]], label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    budgets = sorted(merged, key=float, reverse=True)
    counts = [len(merged[b]) for b in budgets]
    fig, axes = plt.subplots(len(budgets), 2, figsize=(10, 0.26 * sum(counts) + 1.2 * len(budgets)), squeeze=False,
                             gridspec_kw={"height_ratios": counts})
    for (tuned, cut), budget in zip(axes, budgets):
        methods = sorted(merged[budget].items(), key=lambda kv: kv[1]["accuracy_mean"])
        names = [f"{m} ({v['seeds']} seed{'s' if v['seeds'] > 1 else ''})" for m, v in methods]
        colours = ["tab:red" if m.startswith("bayes") else "tab:blue" if m.startswith("tp-") else "tab:gray"
                   for m, _ in methods]
        rows = range(len(methods))
        means = [v["accuracy_mean"] for _, v in methods]
        # a method far below the rest would squash the others: draw it at the edge with its value
        left = max(min(means) - 0.5, max(means) - FINE_TUNED_RANGE)
        shown = [max(m, left) for m in means]
        tuned.errorbar(shown, rows, fmt="none", ecolor="black", elinewidth=0.8,
                       xerr=[(v["accuracy_sd"] or 0.0) if m >= left else 0.0 for m, (_, v) in zip(means, methods)])
        tuned.scatter(shown, rows, c=colours, zorder=3, marker="o")
        for row, mean in zip(rows, means):
            if mean < left:
                tuned.annotate(f"<- {mean:.1f}", (left, row), fontsize=7, textcoords="offset points", xytext=(6, -3))
        tuned.set_xlim(left - 0.2, max(means) + 1.0)
        cut.scatter([v["after_final_cut_mean"] for _, v in methods], rows, c=colours, zorder=3)
        for axis in (tuned, cut):
            axis.set_yticks(list(rows), names if axis is tuned else [""] * len(names), fontsize=8)
            axis.grid(axis="x", alpha=0.3)
        tuned.set_title(f"{float(budget):.0%} of the MACs: accuracy after fine-tuning (%)", fontsize=9)
        cut.set_title("right after the final cut (%)", fontsize=9)
        cut.set_xlim(0, 100)
    fig.suptitle(f"{label}; red: bayes, blue: Torch-Pruning's pruner, grey: bayesprune baselines", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", default=[str(HERE / "results" / name) for name in RESULTS])
    parser.add_argument("--out", default=str(HERE / "figures" / "accuracy_at_budget.png"))
    args = parser.parse_args()
    results = [json.loads(Path(p).read_text()) for p in args.results]
    plot(merged_summary(results), f"{results[0]['arguments']['model']}, {results[0]['label']}", Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
