"""A fast, differentiable-in-spirit model of MACs and params as a function of kept channels.

A conv or linear layer whose input channels belong to group i and output channels to group j
costs ``F * (k_i / n_i) * (k_j / n_j)``, where ``F`` is its full cost as torch-pruning counts
it and ``k``/``n`` are kept/original channel counts; a depthwise conv or a BatchNorm costs
``F * k_j / n_j``; every other op is held at its full-width count. This is exact for
conv/linear/BN terms; activations, pools and additions (about 1-2% of MACs) only shrink when
channels go, so the prediction is an upper bound of torch-pruning's count and a cut chosen to
meet a budget on it meets it on the real count too (the engine verifies this after every cut).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..groups import ChannelGraph, is_depthwise


def _bias_part(module: nn.Module, full: float, kind: str) -> float:
    """The share of a conv/linear layer's count that comes from its bias (torch-pruning's rules)."""
    if module.bias is None:
        return 0.0
    if kind == "params" or isinstance(module, nn.Linear):  # a linear's bias adds out_features once
        return float(module.bias.numel())
    per_position = module.weight.numel() // module.out_channels * module.out_channels // module.groups
    positions = full / (per_position + module.out_channels)
    return module.out_channels * positions


def layer_groups(graph: ChannelGraph) -> tuple[dict[nn.Module, int], dict[nn.Module, int]]:
    """Per module, the group its input channels and the group its output channels belong to."""
    in_group: dict[nn.Module, int] = {}
    out_group: dict[nn.Module, int] = {}
    for gi, group in enumerate(graph.groups):
        dg = group.tp_group._DG
        for item in group.tp_group.items:
            module, handler = item.dep.target.module, item.dep.handler
            if not isinstance(module, nn.Module):
                continue
            if dg.is_out_channel_pruning_fn(handler):
                out_group.setdefault(module, gi)
            if dg.is_in_channel_pruning_fn(handler):
                in_group.setdefault(module, gi)
    return in_group, out_group


@dataclass
class CostModel:
    sizes: np.ndarray  # original channels per group, in graph.groups order
    names: list[str]
    constant: dict[str, float]
    linear: dict[str, np.ndarray]  # kind -> (G,) coefficient per kept channel
    pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # kind -> (i, j, coef per k_i*k_j)

    @classmethod
    @torch.no_grad()
    def build(cls, graph: ChannelGraph) -> "CostModel":
        model = graph.model
        was_training = model.training
        model.eval()
        _, _, layer_macs, layer_params = tp.utils.count_ops_and_params(model, graph.inputs[:1], layer_wise=True)
        model.train(was_training)
        sizes = np.array([g.size for g in graph.groups], dtype=np.float64)
        in_group, out_group = layer_groups(graph)
        G = len(sizes)
        constant = {"macs": 0.0, "params": 0.0}
        linear = {"macs": np.zeros(G), "params": np.zeros(G)}
        pair_lists: dict[str, list] = {"macs": [], "params": []}
        for module in model.modules():
            if next(module.children(), None) is not None:
                continue  # containers: their leaves carry the counts
            for kind, table in (("macs", layer_macs), ("params", layer_params)):
                full = float(table.get(module) or 0.0)
                if kind == "params":
                    full = float(sum(p.numel() for p in module.parameters(recurse=False)))
                if full == 0.0:
                    continue
                gi, go = in_group.get(module), out_group.get(module)
                if isinstance(module, nn.modules.batchnorm._BatchNorm) or is_depthwise(module):
                    g = go if go is not None else gi
                    if g is None:
                        constant[kind] += full
                    else:
                        linear[kind][g] += full / sizes[g]
                elif isinstance(module, (nn.Conv2d, nn.Linear)):
                    bias = _bias_part(module, full, kind)
                    weight = full - bias
                    if go is None:
                        constant[kind] += bias
                    else:
                        linear[kind][go] += bias / sizes[go]  # a bias scales with outputs only
                    if gi is not None and go is not None:
                        pair_lists[kind].append((gi, go, weight / (sizes[gi] * sizes[go])))
                    elif gi is not None or go is not None:
                        g = gi if gi is not None else go
                        linear[kind][g] += weight / sizes[g]
                    else:
                        constant[kind] += weight
                else:
                    constant[kind] += full
        pairs = {}
        for kind, entries in pair_lists.items():
            arr = np.array(entries, dtype=np.float64).reshape(-1, 3)
            pairs[kind] = (arr[:, 0].astype(int), arr[:, 1].astype(int), arr[:, 2])
        return cls(sizes, [g.name for g in graph.groups], constant, linear, pairs)

    def cost(self, keep: np.ndarray, kind: str = "macs") -> float:
        """Predicted MACs or params with ``keep[g]`` channels kept in group g (broadcasts over rows)."""
        keep = np.asarray(keep, dtype=np.float64)
        i, j, coef = self.pairs[kind]
        return self.constant[kind] + keep @ self.linear[kind] + (keep[..., i] * keep[..., j]) @ coef

    def shares(self, kind: str = "macs") -> np.ndarray:
        """Per group, the share of the full cost that goes if the group loses every channel."""
        full = self.full(kind)
        return np.array([1.0 - self.cost(np.where(np.arange(len(self.sizes)) == g, 0.0, self.sizes), kind) / full
                         for g in range(len(self.sizes))])

    def full(self, kind: str = "macs") -> float:
        return self.cost(self.sizes, kind)
