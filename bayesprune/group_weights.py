"""A channel group's weights per root channel: the views criteria and allocations score from.

A torch-pruning group lists every (module, pruning function, indices) that one channel removal
touches; these helpers read the weights of the layers whose *output* channels go (the filters)
and the affine BatchNorm scales, mapped to the group's root channel positions.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def _items(group):
    graph = group._DG
    for item in group.items:
        yield item.dep.target.module, item.dep.handler, list(item.idxs), list(item.root_idxs), graph


def filter_rows(group) -> Iterable[tuple[torch.Tensor, list[int]]]:
    """``(rows, root_idxs)`` for every conv/linear whose *output* channels the group removes.

    ``rows[j]`` is the flattened filter (incoming weights) of the channel at ``root_idxs[j]``.
    """
    for module, handler, idxs, root_idxs, graph in _items(group):
        if isinstance(module, (nn.Conv2d, nn.Linear)) and graph.is_out_channel_pruning_fn(handler):
            yield module.weight.detach()[idxs].flatten(1), root_idxs


def batchnorm_scales(group) -> Iterable[tuple[torch.Tensor, list[int]]]:
    """``(gamma values, root_idxs)`` for every affine BatchNorm in the group."""
    for module, _handler, idxs, root_idxs, _graph in _items(group):
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            yield module.weight.detach()[idxs], root_idxs


def group_size(group) -> int:
    return len(group[0].idxs)


def scatter_sum(size: int, parts: Iterable[tuple[torch.Tensor, list[int]]]) -> tuple[torch.Tensor, int]:
    """Sum per-layer channel values into root-channel positions; also return how many layers added."""
    total = torch.zeros(size, dtype=torch.float64)
    count = 0
    for values, root_idxs in parts:
        total.index_add_(0, torch.as_tensor(root_idxs), values.double().cpu())
        count += 1
    return total, count


def concatenated_filters(group) -> torch.Tensor:
    """``(channels, features)``: every producing layer's filter of channel j, concatenated."""
    size = group_size(group)
    parts = []
    for rows, root_idxs in filter_rows(group):
        block = torch.zeros(size, rows.shape[1], dtype=torch.float64)
        block[torch.as_tensor(root_idxs)] = rows.double().cpu()
        parts.append(block)
    return torch.cat(parts, 1) if parts else torch.zeros(size, 0, dtype=torch.float64)
