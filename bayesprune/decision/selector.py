"""Cut to a budget along a removal order: per-group caps, a fixed per-group count (uniform or a
learned allocation) or the smallest prefix of a global order that meets the cost model's target.

Shared by the posterior decisions of ``bayes``/``bayes-svi`` (:mod:`bayesprune.bayes.decision`),
the expected-loss widths of ``--allocation global`` and search-train.
"""
from __future__ import annotations

import numpy as np

from ..errors import BudgetError
from .allocation import UniformWidths, check_reachable, removable_counts, rounds_widths, uniform_counts
from .cost import CostModel


def marginal_channel_cost(cost_model: CostModel, kind: str) -> np.ndarray:
    """d cost / d k_g at full width: what one more channel of group g costs."""
    sizes = cost_model.sizes
    grad = cost_model.linear[kind].copy()
    i, j, coef = cost_model.pairs[kind]
    np.add.at(grad, i, coef * sizes[j])
    np.add.at(grad, j, coef * sizes[i])
    return np.maximum(grad, 1e-12)


class BudgetedSelector:
    """Cuts to a budget along removal orders, with per-group caps, using the cost model."""

    def __init__(self, cost_model: CostModel, group_of_channel: np.ndarray, target: float, kind: str,
                 max_fraction: float | None, allocation="global", round_to: int = 1, cap: np.ndarray | None = None):
        """``cap`` (per group) replaces the caps of ``max_fraction`` when the caller has checked them."""
        self.cost_model, self.group_of_channel = cost_model, group_of_channel
        self.target, self.kind = target, kind
        sizes = cost_model.sizes
        uniform = allocation == "uniform" or isinstance(allocation, UniformWidths)
        if rounds_widths(round_to) and not uniform:
            raise BudgetError("--round-to works with --allocation uniform only")
        self.cap = removable_counts(sizes, max_fraction, round_to) if cap is None else np.asarray(cap)
        self.channel_cost = marginal_channel_cost(cost_model, kind)[group_of_channel]
        self.per_group_counts = None
        if cap is None:
            check_reachable(cost_model, target, kind, max_fraction, round_to=round_to)
        if uniform:
            self.per_group_counts = uniform_counts(cost_model, target, kind, self.cap, round_to)
        elif not isinstance(allocation, str):  # a learned allocation (e.g. lstm) fixes the counts
            self.per_group_counts = allocation.counts(cost_model, target, kind, self.cap, round_to)

    def capped(self, order: np.ndarray) -> np.ndarray:
        """``order`` without the channels beyond each group's cap (the order a global cut follows)."""
        groups = self.group_of_channel[order]
        by_group = np.argsort(groups, kind="stable")  # positions grouped, order kept within a group
        sorted_groups = groups[by_group]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
        rank_in_group = np.empty(len(order), dtype=int)  # rank of each channel among its group's removals
        rank_in_group[by_group] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        return order[rank_in_group < self.cap[groups]]

    def removal_count(self, order: np.ndarray) -> int:
        """Smallest prefix of ``order`` whose removal meets the budget (cost is monotone in it)."""
        sizes = self.cost_model.sizes
        G = len(sizes)

        def cost_after(m: int) -> float:
            removed = np.bincount(self.group_of_channel[order[:m]], minlength=G)
            return self.cost_model.cost(sizes - removed, self.kind)

        low, high = 0, len(order)
        while low < high:
            mid = (low + high) // 2
            if cost_after(mid) <= self.target:
                high = mid
            else:
                low = mid + 1
        return low

    def select(self, priority: np.ndarray, tie_break: list[np.ndarray] | None = None) -> tuple[np.ndarray, float]:
        """Kept mask after removing lowest ``priority`` first (ties: ``tie_break`` keys, the
        last one first); also the priority at the cut."""
        order = np.lexsort((*(tie_break or ()), priority))
        kept = np.ones(len(priority), dtype=bool)
        if self.per_group_counts is not None:  # fixed count per group, lowest priority within it
            groups = self.group_of_channel[order]
            rank = np.zeros(len(order), dtype=int)
            for g in np.unique(groups):
                rank[groups == g] = np.arange((groups == g).sum())
            removed = order[rank < self.per_group_counts[groups]]
            kept[removed] = False
            cut = priority[removed].max() if len(removed) else float("-inf")
            return kept, float(cut)
        order = self.capped(order)
        m = self.removal_count(order)
        kept[order[:m]] = False
        return kept, float(priority[order[m - 1]]) if m else float("-inf")
