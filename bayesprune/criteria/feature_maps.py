"""Streaming per-channel statistics of feature maps, for the data-dependent criteria.

A channel's *feature map* is ``ReLU`` of the output of the layer its gate sits on (the BatchNorm
after the channel's convolution, or the convolution itself without BatchNorm; see
:mod:`bayesprune.gates`): what conv-BN-ReLU networks pass on. For the linear bottlenecks of
MobileNetV2 (no activation after the projection) the ReLU is our approximation. A coupled group
(residual stage) has one such map per producing layer; statistics are averaged over them.

Collection is streaming and memory-bounded: a :class:`Statistic` folds each batch into per-channel
sums (its ``update``) and forgets the batch; ``max_positions`` subsamples spatial positions for the
statistics that need whole maps as matrices. The time of the pass is recorded by the caller.
"""
from __future__ import annotations

import abc

import torch
import torch.nn.functional as F

from ..gates import ChannelGates
from ..groups import ChannelGraph
from ..training import forward_with_hooks


class Statistic(abc.ABC):
    """Per-channel running statistic over the feature maps of every group."""

    def __init__(self, graph: ChannelGraph):
        self.sizes = [g.size for g in graph.groups]
        self.totals = [torch.zeros(n, dtype=torch.float64) for n in self.sizes]
        self.counts = [torch.zeros(n, dtype=torch.float64) for n in self.sizes]

    @abc.abstractmethod
    def batch_values(self, maps: torch.Tensor) -> torch.Tensor:
        """``(channels,)`` summed statistic of one batch of maps ``(B, C, H, W)`` (or ``(B, C)``)."""

    def batch_count(self, maps: torch.Tensor) -> float:
        """How many items ``batch_values`` summed over (images by default)."""
        return float(maps.shape[0])

    def update(self, group: int, channels: torch.Tensor, maps: torch.Tensor) -> None:
        self.totals[group].index_add_(0, channels, self.batch_values(maps).double().cpu())
        self.counts[group].index_add_(0, channels, torch.full((len(channels),), self.batch_count(maps),
                                                              dtype=torch.float64))

    def result(self, group: int) -> torch.Tensor:
        return self.totals[group] / self.counts[group].clamp_min(1.0)


def collect(model, graph: ChannelGraph, batches, statistic: Statistic) -> Statistic:
    """Run ``batches`` through ``model`` (eval mode) and fold every group's feature maps into ``statistic``."""
    gates = ChannelGates(graph)
    group_of = gates.layer_of_channel
    hooks = []
    for module, channel_index in gates.targets:
        group = int(group_of[channel_index[0]])
        local = (channel_index - gates.offsets[group]).cpu()

        def record(_module, _inputs, output, group=group, local=local):
            statistic.update(group, local, F.relu(output.detach()))
        hooks.append(module.register_forward_hook(record))
    forward_with_hooks(model, batches, hooks)
    return statistic


def flatten_maps(maps: torch.Tensor, max_positions: int | None = None, generator=None) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, P)`` with at most ``max_positions`` sampled positions."""
    flat = maps.flatten(2) if maps.dim() > 2 else maps.unsqueeze(2)
    if max_positions is not None and flat.shape[2] > max_positions:
        pick = torch.randperm(flat.shape[2], generator=generator)[:max_positions].to(flat.device)
        flat = flat[:, :, pick]
    return flat


class PreparedScores:
    """Mixin: ``__call__`` for criteria whose ``prepare`` stores ``self.graph`` and whose
    :meth:`group_scores` gives the scores of a group (by its index in that graph)."""

    graph: ChannelGraph | None = None

    def group_scores(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, group) -> torch.Tensor:
        if self.graph is None:
            raise RuntimeError(f"criterion {self.name}: prepare(model, graph, calibration) must run before scoring")
        scores = self.group_scores(self.graph.index_of(group[0].dep.target.module))
        return scores[torch.as_tensor(list(group[0].root_idxs))]


class FeatureMapCriterion(PreparedScores):
    """Mixin for criteria scored from a :class:`Statistic` gathered in ``prepare``.

    Subclasses set ``statistic_class`` (called with the graph) or override ``make_statistic``;
    ``transform`` turns the per-channel statistic into a score (higher keeps).
    """

    needs_data = True
    statistic_class: type[Statistic]

    def prepare(self, model, graph, calibration) -> None:
        self.statistic = collect(model, graph, calibration.batches(), self.make_statistic(graph))
        self.graph = graph

    def make_statistic(self, graph: ChannelGraph) -> Statistic:
        return self.statistic_class(graph)

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def group_scores(self, index: int) -> torch.Tensor:
        return self.transform(self.statistic.result(index))
