"""FPGM: filters near the geometric median of their layer are redundant (He et al. 2019)."""
from __future__ import annotations

import torch

from .base import Criterion, filter_rows, group_size


def concatenated_filters(group) -> torch.Tensor:
    """``(channels, features)``: every producing layer's filter of channel j, concatenated."""
    size = group_size(group)
    parts = []
    for rows, root_idxs in filter_rows(group):
        block = torch.zeros(size, rows.shape[1], dtype=torch.float64)
        block[torch.as_tensor(root_idxs)] = rows.double().cpu()
        parts.append(block)
    return torch.cat(parts, 1) if parts else torch.zeros(size, 0, dtype=torch.float64)


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
