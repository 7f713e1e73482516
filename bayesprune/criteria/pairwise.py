"""Per-group channel-by-channel matrices accumulated over images, for the redundancy criteria."""
from __future__ import annotations

import numpy as np
import torch

from .feature_maps import Statistic


class PairwiseStatistic(Statistic):
    """Accumulates a ``(C, C)`` matrix per group from each batch's maps (``batch_matrix``)."""

    def __init__(self, graph):
        super().__init__(graph)
        self.matrices = [torch.zeros(n, n, dtype=torch.float64) for n in self.sizes]
        self.images = [0.0] * len(self.sizes)

    def batch_values(self, maps):  # unused: pairwise statistics override update
        raise NotImplementedError

    def batch_matrix(self, maps: torch.Tensor) -> torch.Tensor:
        """``(C, C)`` sum over the batch's images of the pairwise quantity."""
        raise NotImplementedError

    def update(self, group, channels, maps):
        index = channels.long()
        self.matrices[group][index[:, None], index[None, :]] += self.batch_matrix(maps).double().cpu()
        self.images[group] += float(maps.shape[0])

    def matrix(self, group: int) -> torch.Tensor:
        return self.matrices[group] / max(1.0, self.images[group])


def greedy_removal_scores(distance: torch.Tensor) -> torch.Tensor:
    """Remove, one at a time, the channel nearest to any remaining one (ties: smaller total
    distance to the remaining, then lower index); a channel's score is the step at which it would go
    (higher keeps). Nearest distances are updated only for channels whose nearest neighbour left."""
    d = distance.double().cpu().numpy()
    n = len(d)
    far = d.copy()
    np.fill_diagonal(far, np.inf)
    nearest, total = far.min(1), d.sum(1) - np.diag(d)
    alive = np.ones(n, dtype=bool)
    scores = np.empty(n)
    index = np.arange(n)
    for step in range(n):
        candidates = index[alive]
        order = np.lexsort((candidates, total[candidates], nearest[candidates]))
        chosen = candidates[order[0]]
        scores[chosen] = step
        alive[chosen] = False
        total -= d[:, chosen]
        lost = alive & (far[:, chosen] <= nearest)  # their nearest neighbour was the removed channel
        far[:, chosen] = np.inf
        if lost.any():
            nearest[lost] = far[lost].min(1)
    return torch.from_numpy(scores)
