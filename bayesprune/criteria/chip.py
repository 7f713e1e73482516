"""CHIP: channel independence measured by nuclear norms of the feature maps (Sui et al. 2021)."""
from __future__ import annotations

import torch

from .base import Criterion
from .feature_maps import FeatureMapCriterion, Statistic, flatten_maps


class _ChannelIndependence(Statistic):
    """Per image: ``||A||_* - ||A with row c zeroed||_*`` for A = the layer's (C, positions) maps."""

    def __init__(self, graph, max_positions: int = 256, max_images: int = 64, seed: int = 0):
        super().__init__(graph)
        self.max_positions, self.max_images = max_positions, max_images
        self.generator = torch.Generator().manual_seed(seed)

    def batch_values(self, maps):
        maps = maps[: self.max_images]
        rows = flatten_maps(maps, self.max_positions, self.generator).double()  # (B, C, P)
        full = torch.linalg.svdvals(rows).sum(-1)
        independence = torch.empty(rows.shape[1], rows.shape[0], dtype=torch.float64)
        for c in range(rows.shape[1]):
            masked = rows.clone()
            masked[:, c] = 0.0
            independence[c] = full - torch.linalg.svdvals(masked).sum(-1)
        return independence.sum(1)

    def batch_count(self, maps):
        return float(min(len(maps), self.max_images))


class CHIP(FeatureMapCriterion, Criterion):
    """Sui et al. 2021, "CHIP: CHannel Independence-based Pruning", sec. 3: CI(c) =
    ||A||_* - ||M_c ⊙ A||_*, A the layer's feature maps as a (channels x positions) matrix and M_c
    the mask that zeroes row c, averaged over images; a channel the others can express
    (low independence) goes first. Memory and time bounds (our choice): at most ``max_images`` images
    per batch and ``max_positions`` randomly sampled positions per map.
    """

    name = "chip"
    description = "channel independence: nuclear-norm drop when the channel is removed (Sui et al. 2021)"
    source = "Sui et al. 2021, NeurIPS, sec. 3"

    def __init__(self, max_positions: int = 256, max_images: int = 64, seed: int = 0):
        self.max_positions, self.max_images, self.seed = max_positions, max_images, seed

    def make_statistic(self, graph):
        return _ChannelIndependence(graph, self.max_positions, self.max_images, self.seed)
