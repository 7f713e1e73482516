"""A plan as a table (stdout, ``plan.md``) and a figure: predicted accuracy against the budget,
with its interval, and the budget the evidence chose."""
from __future__ import annotations

from pathlib import Path

from ..report.blocks import markdown_table


def plan_rows(plan: dict) -> tuple[list[str], list[list[str]]]:
    """One row per budget: predicted accuracy (mean, interval, the decision's cut) and evidence."""
    percent = int(round(100 * plan["interval"]))
    rows = []
    for budget in plan["budgets"]:
        fraction = f"{budget['fraction']:g}"
        if not budget["reachable"]:
            rows.append([fraction, "unreachable (per-layer caps)", "", "", ""])
            continue
        accuracy = budget["accuracy"]
        interval = f"[{100 * accuracy['low']:.2f}, {100 * accuracy['high']:.2f}]"
        rows.append([fraction, f"{100 * accuracy['mean']:.2f}", interval, f"{100 * accuracy['decision']:.2f}",
                     f"{plan['evidence']['at_budgets'][fraction]:+.1f}"])
    kind = "MACs" if plan["kind"] == "macs" else "params"
    return [f"{kind} kept", "predicted acc. %", f"{percent}% interval", "decision's cut %", "log evidence change"], rows


def plan_table(plan: dict) -> str:
    """:func:`plan_rows` as Markdown, with what the numbers are."""
    return f"{what_is_predicted(plan)}\n\n" + markdown_table(*plan_rows(plan))


def what_is_predicted(plan: dict) -> str:
    """One sentence: the predicted accuracy is the base's minus the loss measured on held-out images."""
    base = plan["base"]
    reference = base.get("reference_accuracy", base["held_out_accuracy"])
    return (f"Accuracy right after one cut (no fine-tuning): the base's {100 * reference:.2f}% (from "
            f"{base.get('reference', 'the held-out training images')}) minus the loss the cut costs on "
            f"{plan['held_out_images']} held-out training images, paired with the base there "
            f"({100 * base['held_out_accuracy']:.2f}%).")


def widths_rows(plan: dict) -> tuple[list[str], list[list[str]]]:
    """Per layer (rows) and budget (columns): the draws' mean surviving channels and their interval."""
    budgets = [b for b in plan["budgets"] if b["reachable"]]
    if not budgets:
        return ["layer"], []
    layers = list(budgets[0]["widths"])
    rows = [[f"{layer} ({budgets[0]['widths'][layer]['size']})"]
            + [f"{b['widths'][layer]['mean']:.1f} [{b['widths'][layer]['low']:.0f}-{b['widths'][layer]['high']:.0f}]"
               for b in budgets] for layer in layers]
    return ["layer (channels)"] + [f"{b['fraction']:g}" for b in budgets], rows


def plan_figure(plan: dict, path: Path) -> None:
    from ..report.figures import pyplot, save_figure

    plt = pyplot()
    points = sorted((b for b in plan["budgets"] if b["reachable"]), key=lambda b: b["fraction"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if points:
        x = [b["fraction"] for b in points]
        ax.fill_between(x, [100 * b["accuracy"]["low"] for b in points], [100 * b["accuracy"]["high"] for b in points],
                        alpha=0.25, color="C0", label=f"{int(round(100 * plan['interval']))}% interval over draws")
        ax.plot(x, [100 * b["accuracy"]["mean"] for b in points], "o-", color="C0", label="predicted (mean)")
        ax.plot(x, [100 * b["accuracy"]["decision"] for b in points], "x", color="C1", label="the decision's cut")
    ax.axhline(100 * plan["base"].get("reference_accuracy", plan["base"]["held_out_accuracy"]), color="gray",
               ls=":", label="base")
    chosen = plan["evidence"]["chosen_fraction"]
    ax.axvline(chosen, color="C2", ls="--", label=f"chosen by the evidence ({chosen:.2f})")
    kind = "MACs" if plan["kind"] == "macs" else "params"
    ax.set_xlabel(f"fraction of the base {kind} kept")
    ax.set_ylabel("accuracy right after the cut (%): base minus the held-out loss")
    ax.set_title(plan["model"], fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path, dpi=110, bbox_inches="tight")
