"""Filter-norm criteria: L1 (Li et al. 2017) and L2 (group-lasso norm, as in DepGraph)."""
from __future__ import annotations

import torch

from ..group_weights import filter_rows, group_size, scatter_sum
from .base import Criterion


class L1Norm(Criterion):
    """Li et al. 2017, "Pruning Filters for Efficient ConvNets", sec. 3.1: s_j = sum_l |F_{j,l}|.

    For a coupled group (residual stages, depthwise pairs) the sums of all filters that produce
    channel j are added: the L1 norm of the concatenated filters. Li et al. score single layers
    and leave residual outputs unpruned; the sum is our extension to coupled groups.
    """

    name = "l1"
    description = "sum of absolute filter weights (Li et al. 2017)"
    source = "Li et al. 2017, ICLR, sec. 3.1"

    def __call__(self, group) -> torch.Tensor:
        scores, _ = scatter_sum(group_size(group), ((rows.abs().sum(1), idx) for rows, idx in filter_rows(group)))
        return scores


class L2Norm(Criterion):
    """Group-lasso norm of the filters producing channel j: s_j = sqrt(sum_l ||F_{j,l}||_2^2).

    He et al. 2018 (SFP) use the per-filter L2 norm; over a coupled group we take the norm of the
    concatenation (Fang et al. 2023, DepGraph, eq. 4 with p = 2).
    """

    name = "l2"
    description = "L2 norm of the filters, concatenated over a coupled group"
    source = "He et al. 2018 (SFP), IJCAI; Fang et al. 2023 (DepGraph), CVPR, eq. 4"

    def __call__(self, group) -> torch.Tensor:
        squares, _ = scatter_sum(group_size(group), ((rows.pow(2).sum(1), idx) for rows, idx in filter_rows(group)))
        return squares.sqrt()
