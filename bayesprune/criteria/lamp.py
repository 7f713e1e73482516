"""LAMP: layer-adaptive magnitude scores, comparable across layers (Lee et al. 2021)."""
from __future__ import annotations

import torch

from .base import Criterion
from ..group_weights import concatenated_filters


class LAMP(Criterion):
    """Lee et al. 2021, "Layer-adaptive Sparsity for the Magnitude-based Pruning", sec. 3, at channel
    level: with ``w_j = ||F_j||_2^2`` (the channel's concatenated filters) sorted ascending, score_j =
    ``w_j / sum_{k : w_k >= w_j} w_k``. The largest channel of every layer scores 1, so a global
    ranking never empties a layer by magnitude scale alone. (Lee et al. score single weights; the
    channel version replaces ``u^2`` by the filter's squared norm.)
    """

    name = "lamp"
    description = "layer-adaptive magnitude: norm^2 over the norm^2 of all larger channels (Lee et al. 2021)"
    source = "Lee et al. 2021, ICLR, sec. 3"

    def __call__(self, group) -> torch.Tensor:
        squared = concatenated_filters(group).pow(2).sum(1)
        order = torch.argsort(squared)
        tail = torch.flip(torch.cumsum(torch.flip(squared[order], [0]), 0), [0])  # sum over >= rank
        scores = torch.empty_like(squared)
        scores[order] = squared[order] / tail.clamp_min(1e-300)
        return scores
