"""FPUM: uniqueness of feature maps in the frequency domain (Zhang 2023, thesis ch. 5)."""
from __future__ import annotations

import torch
from scipy.fft import dctn

from .base import Criterion
from .feature_maps import FeatureMapCriterion
from .pairwise import PairwiseStatistic


class _FrequencySimilarity(PairwiseStatistic):
    def __init__(self, graph, frequencies: int = 8):
        super().__init__(graph)
        self.frequencies = frequencies

    def batch_matrix(self, maps):
        if maps.dim() < 4:
            maps = maps[:, :, None, None]
        spectrum = torch.from_numpy(dctn(maps.double().cpu().numpy(), axes=(2, 3), norm="ortho"))
        k = self.frequencies
        low = spectrum[:, :, :k, :k].flatten(2)  # (B, C, k*k) lowest frequencies
        unit = low / low.norm(dim=2, keepdim=True).clamp_min(1e-12)
        return (unit @ unit.transpose(1, 2)).sum(0)  # cosine similarity per image, summed


class FPUM(FeatureMapCriterion, Criterion):
    """Zhang 2023, "Deep Neural Network Compression with Filter Pruning" (PhD thesis, Lancaster),
    ch. 5: a feature map that the others can replace is not unique and can go. Our reading of the
    public description (the abstract; the chapter's equations are not in our sources): each map is
    transformed by a 2-D DCT (orthonormal) and described by its ``frequencies x frequencies``
    lowest-frequency coefficients; similarity = cosine of those vectors, averaged over images;
    uniqueness_c = 1 - max_{j != c} similarity(c, j). A copy of another map has uniqueness 0;
    low uniqueness is pruned first.
    """

    name = "fpum"
    description = "uniqueness of the DCT spectrum of feature maps: 1 - max similarity to another (Zhang 2023)"
    source = "Zhang 2023, PhD thesis, Lancaster University, ch. 5"

    def __init__(self, frequencies: int = 8):
        self.frequencies = frequencies

    def make_statistic(self, graph):
        return _FrequencySimilarity(graph, self.frequencies)

    def group_scores(self, index):
        similarity = self.statistic.matrix(index).clone()
        if len(similarity) == 1:
            return torch.ones(1, dtype=torch.float64)
        similarity.fill_diagonal_(float("-inf"))
        return 1.0 - similarity.max(1).values
