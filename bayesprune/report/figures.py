"""The report's figures. Each function draws one PNG into ``folder`` and returns its file name.

Files are written atomically (a killed report never leaves half a PNG behind).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..runs import atomic_path
from .load import RoundPosterior, RunRecord


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, **savefig_options) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig_options)
    plt.close(fig)


def _save(fig, folder: Path, name: str) -> str:
    save_figure(fig, folder / name, dpi=110, bbox_inches="tight")
    return name


def accuracy_vs_macs(run: RunRecord, folder: Path) -> str:
    """Every round after the cut and after fine-tuning, in fractions of the base MACs; base marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    base_macs = run.base["macs"]
    ratios = [1.0] + [r["macs"] / base_macs for r in run.rounds]
    tuned = [run.base["accuracy"]] + [r["accuracy"] for r in run.rounds]
    ax.plot(ratios, [100 * a for a in tuned], "o-", color="C0", label="after fine-tuning")
    ax.plot(ratios[1:], [100 * r["accuracy_after_cut"] for r in run.rounds], "v", color="C3",
            label="right after the cut")
    ax.plot([1.0], [100 * run.base["accuracy"]], "*", color="k", markersize=14, label="base")
    for ratio, accuracy, record in zip(ratios[1:], tuned[1:], run.rounds):
        ax.annotate(f"r{record['round']}", (ratio, 100 * accuracy), textcoords="offset points", xytext=(4, 4))
    ax.invert_xaxis()  # pruning moves to the right
    ax.set_xlabel("MACs / base MACs")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, folder, "accuracy_vs_macs.png")


def widths(run: RunRecord, folder: Path) -> str:
    """Channels per layer: base, and after each round's cut."""
    plt = pyplot()
    layers = list(run.rounds[0]["widths"])
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(layers)), 3.8))
    x = np.arange(len(layers))
    ax.bar(x, [run.rounds[0]["widths"][n][0] for n in layers], color="0.85", label="base")
    for record in run.rounds:
        ax.plot(x, [record["widths"].get(n, [0, 0])[1] for n in layers], "o-", markersize=3,
                label=f"after round {record['round']}")
    ax.set_xticks(x, layers, rotation=90, fontsize=7)
    ax.set_ylabel("channels")
    ax.legend(fontsize=8)
    return _save(fig, folder, "widths.png")


def keep_forest(posterior: RoundPosterior, folder: Path) -> str:
    """Per layer, every channel's keep probability with its 90% interval (forest style),
    sorted; filled = kept, hollow = pruned, red = uncertain."""
    plt = pyplot()
    layers = list(dict.fromkeys(row["layer"] for row in posterior.table))
    ncols = min(4, len(layers))
    nrows = math.ceil(len(layers) / ncols)
    most = max(sum(row["layer"] == n for row in posterior.table) for n in layers)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, max(2.0, 0.05 * most + 1.0) * nrows),
                             squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        rows = sorted((r for r in posterior.table if r["layer"] == layer), key=lambda r: r["keep_probability"])
        y = np.arange(len(rows))
        p = np.array([r["keep_probability"] for r in rows])
        low = np.array([r["keep_probability_low"] for r in rows])
        high = np.array([r["keep_probability_high"] for r in rows])
        kept = np.array([r["kept"] > 0 for r in rows])
        uncertain = np.array([r["uncertain"] > 0 for r in rows])
        ax.hlines(y, low, high, color="0.6", linewidth=0.8)
        colors = np.where(uncertain, "C3", "C0")
        ax.scatter(p[kept], y[kept], s=9, c=colors[kept], zorder=3)
        ax.scatter(p[~kept], y[~kept], s=9, facecolors="none", edgecolors=colors[~kept], zorder=3)
        ax.set_xlim(-0.03, 1.03)
        ax.set_yticks([])
        ax.set_title(f"{layer} ({kept.sum()}/{len(rows)} kept)", fontsize=8)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.supxlabel("keep probability (90% interval)")
    return _save(fig, folder, f"keep_forest_round{posterior.round}.png")


def surviving(record: dict, folder: Path) -> str:
    """Per layer: expected surviving channels with the 90% interval over draws, and the decision."""
    plt = pyplot()
    layers = record["layers"]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(layers)), 3.8))
    x = np.arange(len(layers))
    expected = np.array([row["expected_surviving"] for row in layers])
    low = np.array([row["interval_low"] for row in layers])
    high = np.array([row["interval_high"] for row in layers])
    ax.bar(x, [row["channels"] for row in layers], color="0.88", label="channels before the cut")
    # float rounding can put the mean a hair outside a degenerate interval
    yerr = [np.maximum(expected - low, 0.0), np.maximum(high - expected, 0.0)]
    ax.errorbar(x, expected, yerr=yerr, fmt="o", color="C0", markersize=4,
                capsize=2, label="expected survivors (90% interval)")
    ax.plot(x, [row["kept"] for row in layers], "_", color="C3", markersize=12, mew=2, label="kept (decision)")
    ax.set_xticks(x, [row["layer"] for row in layers], rotation=90, fontsize=7)
    ax.set_ylabel("channels")
    ax.legend(fontsize=8)
    return _save(fig, folder, f"surviving_round{record['round']}.png")


def keep_histogram(posteriors: list[RoundPosterior], folder: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(0, 1, 21)
    for posterior in posteriors:
        ax.hist([r["keep_probability"] for r in posterior.table], bins=bins, histtype="step", linewidth=1.5,
                label=f"round {posterior.round}")
    ax.set_yscale("log")
    ax.set_xlabel("keep probability")
    ax.set_ylabel("channels")
    ax.legend()
    return _save(fig, folder, "keep_histogram.png")


def elbo_curves(traces: dict[int, np.ndarray], folder: Path) -> str:
    """ELBO per SVI step, one panel per round, one line per chain (independent fit)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(traces), figsize=(3.6 * len(traces), 3.2), squeeze=False)
    for ax, (round_index, trace) in zip(axes.flat, traces.items()):
        for chain, values in enumerate(np.atleast_2d(trace)):
            ax.plot(values, linewidth=0.8, label=f"fit {chain + 1}")
        ax.set_title(f"round {round_index}", fontsize=9)
        ax.set_xlabel("SVI step")
        ax.set_yscale("symlog")
    axes.flat[0].set_ylabel("ELBO")
    axes.flat[0].legend(fontsize=7)
    return _save(fig, folder, "elbo.png")


def trace_plot(idata, variables: list[str], round_index: int, folder: Path) -> str:
    """arviz trace plot (density and draws per chain) of the global and per-layer scales."""
    import arviz as az

    pyplot()
    axes = az.plot_trace(idata, var_names=variables, compact=True, combined=False,
                         figsize=(9, 2.4 * len(variables)))
    fig = np.atleast_2d(axes)[0, 0].figure
    fig.tight_layout()
    return _save(fig, folder, f"trace_round{round_index}.png")
