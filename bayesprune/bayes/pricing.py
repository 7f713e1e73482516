"""How the closed-form posterior (:class:`~bayesprune.criteria.bayes_laplace.BayesLaplace`) prices a
cut: per posterior draw of the gates, what removing each channel adds to its layer's cut per unit
cost (:func:`~bayesprune.fisher.cut_priority`: the quadratic Laplace loss of the layer's Fisher
block, MacKay 1992), or with ``cross_layer`` its step in a greedy cut under the Fisher of all gates
(:func:`~bayesprune.fisher.cross_layer_priority`). One pricing per set of Fisher statistics: the
run's (all calibration batches) and each half's, which the agreement figures compare."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fisher import cross_layer_priority, cut_priority


@dataclass(frozen=True)
class CutPricing:
    """The Fisher statistics a cut is priced with, in each layer's ``within`` order."""

    orders: list[np.ndarray]  # per layer, its channels in the order it gives them up
    blocks: list[np.ndarray]  # per layer, the Fisher block of its channels in that order
    examples: int  # N: the training images the likelihood counts
    shares: list[np.ndarray] | None = None  # per layer, the share of a k-channel cut the lsq refit leaves
    network_precision: np.ndarray | None = None  # cross_layer: N times the Fisher of all gates

    @classmethod
    def of(cls, fisher, orders: list[np.ndarray], examples: int, half: int | None = None, interactions: bool = True,
           cross_layer: bool = False, shares: list[np.ndarray] | None = None) -> "CutPricing":
        """From a :class:`~bayesprune.fisher.GateFisher` (``half``: of which half of its batches; None: all).
        ``interactions``: each layer's full Fisher block (channels removed together interact), else its
        diagonal; ``cross_layer``: channels of different layers interact too."""
        blocks = [fisher.block(order, half) for order in orders]
        if not interactions:
            blocks = [np.diag(np.diag(block)) for block in blocks]
        network = examples * fisher.block(np.arange(sum(map(len, orders))), half) if cross_layer else None
        return cls(orders, blocks, examples, shares, network)

    def priority(self, gate_draws: np.ndarray, channel_cost: np.ndarray) -> np.ndarray:
        """Per draw ``(draws, channels)``, each channel's removal priority (lower goes first)."""
        if self.network_precision is not None:
            return cross_layer_priority(gate_draws, self.orders, self.network_precision, channel_cost)
        return cut_priority(gate_draws, self.orders, self.blocks, self.examples, channel_cost, self.shares)
