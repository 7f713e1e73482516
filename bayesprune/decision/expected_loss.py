"""``--allocation global`` for every criterion: layer widths from the expected loss of a cut per
MAC it saves, so that channels of different layers compete in one unit.

A criterion's scores only order channels *within* a layer: an L2 norm in one layer and one in
another are not comparable (the earlier global rule, score over the layer's mean, now
``score-global``, ignores what a channel costs and lost 1-2 points to uniform widths). Here every
channel's gate gets its per-example gradients over the calibration batches
(:mod:`bayesprune.fisher`); removing a layer's lowest-scoring k channels ``S`` costs
``N 1^T F_SS 1 / 2`` nats of log-likelihood, ``F_SS`` their empirical Fisher block (the quadratic
approximation of Optimal Brain Damage, LeCun et al. 1990, eq. 5, for gates at 1, with the
layer's cross terms), and channels go in increasing order of what they add to
their layer's cut per MAC (or param) saved (:func:`~bayesprune.fisher.cut_priority`), each
layer in the criterion's order, under the per-layer caps, until the budget is met. This is the
posterior-mean width rule of ``bayes`` without its prior; ``bayes`` and ``bayes-svi`` decide their
widths themselves.
"""
from __future__ import annotations

import numpy as np

from ..fisher import GateFisher, cut_priority, gate_fisher, order_ranks
from ..gates import ChannelGates
from .cost import CostModel
from .selector import BudgetedSelector


class ExpectedLossWidths:
    """An allocation object (``counts`` as :func:`~bayesprune.decision.allocation.allocate` expects)."""

    def __init__(self, fisher: GateFisher, examples: int, sizes: list[int]):
        self.fisher, self.examples = fisher, int(examples)
        self.offsets = np.r_[0, np.cumsum(sizes)[:-1]].astype(int)
        self.group_of_channel = np.repeat(np.arange(len(sizes)), sizes)

    @classmethod
    def measure(cls, model, graph, calibration) -> "ExpectedLossWidths":
        """The gate gradients of ``graph``'s network over the calibration batches."""
        fisher = gate_fisher(model, ChannelGates(graph), calibration.batches(), calibration.collective)
        return cls(fisher, len(calibration.data.train_y), [g.size for g in graph.groups])

    def counts(self, cost_model: CostModel, target: float, kind: str, cap: np.ndarray, round_to: int = 1,
               orders: list[np.ndarray] | None = None, scores=None) -> np.ndarray:
        """Channels to remove per group; ``orders[g]``: group g's local channels, first to go first."""
        if orders is None:
            raise TypeError("ExpectedLossWidths.counts needs each layer's removal order (the criterion's scores)")
        selector = BudgetedSelector(cost_model, self.group_of_channel, target, kind, None, "global", 1, cap=cap)
        channels = [offset + np.asarray(order, dtype=int) for offset, order in zip(self.offsets, orders)]
        blocks = [self.fisher.block(c) for c in channels]
        total = len(self.group_of_channel)
        priority = cut_priority(np.ones((1, total)), channels, blocks, self.examples, selector.channel_cost)[0]
        kept, _ = selector.select(priority, tie_break=[order_ranks(channels, total)])
        return np.bincount(self.group_of_channel[~kept], minlength=len(self.offsets))
