"""FPGM: filters near the geometric median of their layer are redundant (He et al. 2019)."""
from __future__ import annotations

import torch

from ..group_weights import concatenated_filters
from .base import Criterion


class FPGM(Criterion):
    """He et al. 2019, "Filter Pruning via Geometric Median", sec. 3: the filter minimising
    ``sum_k ||F_j - F_k||_2`` over its layer is (closest to) the geometric median, whose
    information the others carry; score_j = sum_k ||F_j - F_k||_2, lowest pruned first. A coupled
    group's filters are concatenated per channel (our extension, as for ``l2``).
    """

    name = "fpgm"
    description = "total distance to the layer's other filters (geometric median, He et al. 2019)"
    source = "He et al. 2019, CVPR, sec. 3"

    def __call__(self, group) -> torch.Tensor:
        filters = concatenated_filters(group)
        return torch.cdist(filters, filters).sum(1)
