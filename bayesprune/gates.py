"""Multiplicative channel gates on a network's channel groups, applied with forward hooks.

Every channel c of every prunable group gets one gate ``s_c`` (coupled channels of a group share
it). The gate multiplies the group's output right after BatchNorm: for each BatchNorm of the group
that normalises a regular (non-depthwise) convolution, ``y[:, j] <- s[root(j)] * y[:, j]``.
BatchNorms after depthwise convolutions are skipped, since gating both ends of an
expand-depthwise pair would apply the gate twice along one path. A group without BatchNorm is
gated at its convolution/linear outputs instead. Gates of 1 leave the network unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from .groups import ChannelGraph, is_depthwise


class ChannelGates:
    """Holds one gate per channel of ``graph`` and the hooks that apply them."""

    def __init__(self, graph: ChannelGraph):
        self.graph = graph
        self.offsets, start = [], 0
        for group in graph.groups:
            self.offsets.append(start)
            start += group.size
        self.num_channels = start
        self.layer_of_channel = torch.cat([torch.full((g.size,), i, dtype=torch.long)
                                           for i, g in enumerate(graph.groups)])
        self.values: torch.Tensor | None = None  # set before each forward; None = no gating
        self.targets = self._gate_targets()
        self._hooks: list = []

    def _gate_targets(self) -> list[tuple[nn.Module, torch.Tensor]]:
        dg = self.graph.dg
        targets = []
        for offset, group in zip(self.offsets, self.graph.groups):
            found = []
            for item in group.tp_group.items:
                module = item.dep.target.module
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    sources = [n.module for n in dg.module2node[module].inputs]
                    if not any(is_depthwise(s) for s in sources):
                        found.append((module, offset + torch.as_tensor(item.root_idxs)))
            if not found:
                for module, _local, root_idxs in group.layers(out_channels=True):
                    if isinstance(module, (nn.Conv2d, nn.Linear)) and not is_depthwise(module):
                        found.append((module, offset + torch.as_tensor(root_idxs)))
            targets += found
        return targets

    def group_slice(self, index: int) -> slice:
        return slice(self.offsets[index], self.offsets[index] + self.graph.groups[index].size)

    def removal(self, kept) -> dict[str, list[int]]:
        """The cut that keeps the channels where ``kept`` (one flag per gate) is true: per group, the
        channel indices it removes (the form :meth:`ChannelGraph.prune` takes)."""
        kept = torch.as_tensor(kept, dtype=torch.bool)
        return {group.name: torch.nonzero(~kept[self.group_slice(i)]).flatten().tolist()
                for i, group in enumerate(self.graph.groups)}

    def attach(self) -> "ChannelGates":
        for module, channel_index in self.targets:
            self._hooks.append(module.register_forward_hook(self._hook(channel_index)))
        return self

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def _hook(self, channel_index: torch.Tensor):
        def apply(_module, _inputs, output):
            if self.values is None:
                return output
            gate = self.values[..., channel_index.to(self.values.device)]
            shape = (-1,) + (1,) * (output.dim() - 2) if gate.dim() == 1 else gate.shape + (1,) * (output.dim() - 2)
            return output * gate.reshape(shape)
        return apply

    def __enter__(self) -> "ChannelGates":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()
