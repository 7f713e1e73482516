"""The budgeted Bayes decision: keep probabilities from posterior draws, and the kept set.

For each posterior draw ``s`` of all gates:

1. every channel's *effect* is ``(s_c / sigma_c)^2``, its gate's squared signal-to-noise ratio
   (``sigma_c`` = posterior sd of the gate). For a Gaussian posterior this is twice the
   quadratic (Laplace) estimate of the log-likelihood, in nats, lost by setting ``s_c = 0``, and
   its inverse is the ``alpha = sigma^2 / mu^2`` that Louizos et al. 2017, sec. 4, threshold to
   prune. A channel the data does not need keeps its prior-sized spread and scores about 1; a
   needed one scores hundreds. Its *cost* is the marginal MACs (or params) of one channel of its
   group in the current network (the cost model's gradient at full width, fixed across draws so
   that a draw's ranking does not depend on the budget);
2. channels are removed in increasing ``effect / cost`` order (at most ``max_fraction`` of any
   group, never all of it) until the cost model says the network is within budget.

A channel's **keep probability** is the fraction of draws in which it survives. Because every
draw's removal order is fixed, a larger budget keeps a superset in every draw, so keep
probabilities are monotone in the budget.

The **decision** maximises the expected utility ``U(K) = sum_{c in K} P(c kept)``, the expected
number of channels on which the kept set K agrees with the posterior's own budgeted choice,
subject to ``cost(K) <= budget``: a knapsack, solved greedily by removing channels in increasing
``P(c kept) / cost_c`` order (ties broken by posterior mean effect per cost) until the budget is met.

With ``allocation="uniform"`` the per-layer counts are fixed first (every group loses the same
fraction, the smallest that meets the budget, as for the point-estimate criteria) and each draw,
and the decision, choose *which* channels go within each group by the same rules; this avoids
the global ranking's tendency to empty the most expensive layers, where single-channel effects
stop adding up.

A channel is **uncertain** when the 90% HDI of its ``effect / cost`` contains the cut level
(the median over draws of the effect-per-cost at which that draw stopped removing).
"""
from __future__ import annotations

import numpy as np

from ..decision.allocation import check_reachable, removable_counts, uniform_counts
from ..decision.cost import CostModel
from ..errors import BudgetError


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
        if round_to > 1 and allocation != "uniform":
            raise BudgetError("--round-to works with --allocation uniform only")
        self.cap = removable_counts(sizes, max_fraction, round_to) if cap is None else np.asarray(cap)
        self.channel_cost = marginal_channel_cost(cost_model, kind)[group_of_channel]
        self.per_group_counts = None
        if cap is None:
            check_reachable(cost_model, target, kind, max_fraction, round_to=round_to)
        if allocation == "uniform":
            self.per_group_counts = uniform_counts(cost_model, target, kind, self.cap, round_to)
        elif not isinstance(allocation, str):  # a learned allocation (e.g. lstm) fixes the counts
            self.per_group_counts = allocation.counts(cost_model, target, kind, self.cap, round_to)

    def _capped(self, order: np.ndarray) -> np.ndarray:
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
        order = self._capped(order)
        m = self.removal_count(order)
        kept[order[:m]] = False
        return kept, float(priority[order[m - 1]]) if m else float("-inf")


def keep_probabilities(effect_draws: np.ndarray, selector: BudgetedSelector) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-draw budgeted decisions; returns ``(kept per draw, keep probability, median cut level)``."""
    ratio = effect_draws / selector.channel_cost
    kept, cuts = zip(*(selector.select(r) for r in ratio))
    kept = np.stack(kept)
    return kept, kept.mean(0), float(np.median(cuts))


def bayes_decision(keep_probability: np.ndarray, mean_effect: np.ndarray, selector: BudgetedSelector,
                   keep_probability_final: np.ndarray | None = None) -> np.ndarray:
    """The kept set maximising expected agreement with the posterior decisions under the budget.

    With ``keep_probability_final`` (the probability of surviving the run's final budget), that
    is the utility and this round's keep probability breaks ties, then the mean effect.
    """
    cost = selector.channel_cost
    if keep_probability_final is None:
        return selector.select(keep_probability / cost, tie_break=[mean_effect / cost])[0]
    return selector.select(keep_probability_final / cost,
                           tie_break=[mean_effect / cost, keep_probability / cost])[0]
