"""FOAD: inter-channel geometric distance of feature maps, greedy removal of the most redundant."""
from __future__ import annotations

import torch

from .base import Criterion
from .feature_maps import FeatureMapCriterion, flatten_maps
from .pairwise import PairwiseStatistic, greedy_removal_scores


class _MapDistance(PairwiseStatistic):
    def __init__(self, graph, max_positions: int = 1024):
        super().__init__(graph)
        self.max_positions = max_positions

    def batch_matrix(self, maps):
        flat = flatten_maps(maps, self.max_positions).double()  # (B, C, P)
        return torch.cdist(flat, flat).sum(0)


class FOAD(FeatureMapCriterion, Criterion):
    """Shi et al. 2024, "Feature-Oriented and Decoupled Network Structure Based Filter Pruning",
    J. Comput. Res. Dev. 61(7), sec. 3: the redundancy of a channel is its geometric (Euclidean)
    distance to the other channels' feature maps, and the kept set is found greedily, decoupled from
    training. Our reading of the public description (the abstract; the equations are not in our
    sources): D[i, j] = mean over images of ||O_i - O_j||_2, then channels are removed one at a time,
    always the one nearest to a remaining channel (ties: smaller total distance); the removal step is
    the score, so any budget cuts a prefix of the greedy sequence.
    """

    name = "foad"
    description = "greedy removal of the channel whose feature maps are nearest another's (Shi et al. 2024)"
    source = "Shi et al. 2024, J. Comput. Res. Dev. 61(7):1836-1849, sec. 3"

    def make_statistic(self, graph):
        return _MapDistance(graph)

    def group_scores(self, index):
        return greedy_removal_scores(self.statistic.matrix(index))
