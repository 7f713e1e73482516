"""How `analysis/plan_calibration.py` scores its stored cells: the plan's interval for the test
accuracy, whether each cut's measured accuracy falls inside, the summary over cells and nominal
levels, and the budget where fine-tuned accuracy falls 1 point below the base. Pure functions of
what a cell stores (the draws' losses and discordances), so cells measured under an earlier interval
rule are scored again exactly."""
from __future__ import annotations

import numpy as np

LEVELS = (0.5, 0.7, 0.8, 0.9, 0.95)
INTERVAL = 0.9  # the plan's interval (PlanConfig's default)


def test_interval(cell: dict, level: float) -> tuple[float, float]:
    """The plan's ``level`` interval for the accuracy measured on the test set: the base's measured test
    accuracy minus the paired loss interval, with the sampling error of measuring it on the test images."""
    from bayesprune.plan.curve import loss_interval

    low, high = loss_interval(cell["draw_loss"], cell["draw_discordance"], cell["held_out_images"], level,
                              test_images=cell["test_images"], floor=cell["discordance_floor"])
    return cell["base_test"] - high, cell["base_test"] - low


def scored(cell: dict, seen_by_base: bool | None, seed: int, level: float) -> dict:
    """A budget's cell with the plan's interval and its coverage under the current interval rule. The
    rule is a function of what the cell stores (the draws' losses and discordances), so cells measured
    before a change of the rule (those without ``discordance_floor``) are scored again exactly, as the
    plan would have reported them: the floor the plan applies to its held-out images when the base saw
    them (``seen_by_base`` None or True), from the reference, which is here always an accuracy on new
    images (the shipped card's test accuracy, or an unseen base's held-out accuracy)."""
    from bayesprune.plan.curve import discordance_floor, loss_interval

    if "discordance_floor" not in cell:
        cell = {**cell, "discordance_floor": discordance_floor(seen_by_base, cell["reference_accuracy"]),
                "scored_again": True}
    low, high = loss_interval(cell["draw_loss"], cell["draw_discordance"], cell["held_out_images"], level,
                              seed=seed, floor=cell["discordance_floor"])
    test_low, test_high = test_interval(cell, level)
    return {**cell, "low": cell["reference_accuracy"] - high, "high": cell["reference_accuracy"] - low,
            "covered": test_low <= cell["measured_test"] <= test_high,
            "covered_run": test_low <= cell["measured_test_run"] <= test_high}


def one_point_budget(grid: dict) -> float | None:
    """The budget where the mean fine-tuned accuracy falls 1 point below the base (linear between
    grid budgets; None when no budget of the grid loses a point, or the first one already does)."""
    points = sorted(((float(f), np.mean(v)) for f, v in grid["by_fraction"].items()), reverse=True)
    loss = [(f, 100 * (grid["base"] - a)) for f, a in points]
    for (f0, l0), (f1, l1) in zip(loss, loss[1:]):
        if l0 <= 1.0 < l1:
            return f0 + (f1 - f0) * (1.0 - l0) / (l1 - l0)
    return None


def summarise(cells: list[dict]) -> dict:
    """Coverage of the plan's 90% interval (the posterior's own cut; and the default run's cut), a
    reliability curve over nominal levels, and beside it the first version's interval: the draws'
    accuracy on the held-out training images, unpaired (:func:`~bayesprune.plan.curve.predictive_interval`)."""
    budgets = [b for cell in cells for b in cell["budgets"]]
    from bayesprune.plan.curve import predictive_interval

    reliability, held_out_accuracy = {}, {}
    for level in LEVELS:
        covered = [low <= b["measured_test"] <= high for b in budgets for low, high in [test_interval(b, level)]]
        reliability[f"{level:g}"] = float(np.mean(covered)) if covered else None
        unpaired = [low <= b["measured_test"] <= high for b in budgets
                    for low, high in [predictive_interval(b["draw_accuracy"], b["held_out_images"], level)]]
        held_out_accuracy[f"{level:g}"] = float(np.mean(unpaired)) if unpaired else None
    by_network = {}
    for network in dict.fromkeys(c["network"] for c in cells):
        mine = [b for c in cells if c["network"] == network for b in c["budgets"]]
        by_network[network] = {"coverage_90": float(np.mean([b["covered"] for b in mine])), "cells": len(mine),
                               "coverage_90_run": float(np.mean([b["covered_run"] for b in mine])),
                               "mean_abs_error_points": float(100 * np.mean([abs(b["predicted"] - b["measured_test"])
                                                                             for b in mine])),
                               "mean_interval_width_points": float(100 * np.mean([b["high"] - b["low"]
                                                                                  for b in mine]))}
    return {"coverage_90": float(np.mean([b["covered"] for b in budgets])) if budgets else None,
            "coverage_90_run": float(np.mean([b["covered_run"] for b in budgets])) if budgets else None,
            "cells": len(budgets), "reliability": reliability,
            "reliability_held_out_accuracy": held_out_accuracy, "by_network": by_network}


def scored_again(cell: dict) -> dict:
    """A plan's cells scored under the current interval rule (:func:`scored`)."""
    return {**cell, "budgets": [scored(b, cell.get("held_out_seen_by_base"), cell["seed"], INTERVAL)
                                for b in cell["budgets"]]}
