"""The cuts a posterior makes at one budget (used by :class:`~bayesprune.criteria.bayes_laplace.BayesLaplace`).

Each posterior draw gives every channel a removal priority (what removing it adds to its layer's
cut per unit cost, non-decreasing along the layer's ``within`` order). At a budget, each draw
removes channels in increasing priority under the per-layer caps (the greedy rule of the
fractional knapsack; :class:`~bayesprune.decision.selector.BudgetedSelector`); the share of draws
that keep a channel is its keep probability, and the decision is the cut of the posterior-mean
priority (minimum posterior expected loss). Ties break by position in the layer's order, so that
every cut of a layer is a prefix of that order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..decision.selector import BudgetedSelector


@dataclass(frozen=True)
class PosteriorCuts:
    """The cuts one posterior makes at one budget."""

    kept_draws: np.ndarray  # (draws, channels) bool: each draw's cut
    keep_probability: np.ndarray  # (channels,): the share of draws that keep each channel
    decision: np.ndarray  # (channels,) bool: the kept set (posterior-mean priority, under the budget)
    cut_level: float  # the median over draws of the priority at which a draw stopped removing
    priority: np.ndarray  # (draws, channels): removal priority per draw
    removal_order: np.ndarray  # channels in the decision's removal order, capped: every budget cuts a prefix


def layer_orders(group_of_channel: np.ndarray, score: np.ndarray) -> list[np.ndarray]:
    """Per layer, its channels by increasing ``score`` (the order in which the layer gives them up)."""
    orders = []
    for g in np.unique(group_of_channel):
        members = np.flatnonzero(group_of_channel == g)
        orders.append(members[np.argsort(score[members], kind="stable")])
    return orders


def draw_cuts(priority: np.ndarray, selector: BudgetedSelector, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                             float]:
    """Each draw's kept set, the share of draws that keep each channel, and the median cut level."""
    kept, levels = zip(*(selector.select(p, tie_break=[rank]) for p in priority))
    kept = np.stack(kept)
    return kept, kept.mean(0), float(np.median(levels))


def posterior_cuts(priority: np.ndarray, selector: BudgetedSelector, rank: np.ndarray) -> PosteriorCuts:
    """Every draw's cut and the decision at ``selector``'s budget (``rank``: position in the layer's order)."""
    kept_draws, keep_probability, cut_level = draw_cuts(priority, selector, rank)
    mean_priority = priority.mean(0)  # non-decreasing along each layer's order, like every draw's
    decision = selector.select(mean_priority, tie_break=[rank])[0]
    return PosteriorCuts(kept_draws, keep_probability, decision, cut_level, priority,
                         selector.capped(np.lexsort((rank, mean_priority))))
