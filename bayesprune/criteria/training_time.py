"""The contract of methods that prune *while training* (``pfam``, ``sep``, ``search-train``).

A :class:`TrainingCriterion` is a :class:`Criterion` whose :meth:`~TrainingCriterion.search` trains
the network for ``--search-epochs`` before the round's cut, with the method's own soft masks,
gates or losses, and leaves behind the channels to remove; :meth:`select` then returns them, and
the engine cuts, measures and fine-tunes exactly as for a point criterion. The epochs a search
consumes are recorded in the round (``search_epochs``), so comparisons can be made at equal total
epochs. A training-time method can start from random weights (``--from-scratch``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..gates import ChannelGates
from ..decision import CostModel, RoundBudget
from ..groups import ChannelGraph
from ..surgery import fold_gates
from ..training import FitConfig
from .base import Calibration, Criterion


@dataclass
class SearchContext:
    """What a search may use: the graph and cost model of the network it trains, the round's
    budget (absolute MACs/params, the allocation and its rules), and the training settings."""

    graph: ChannelGraph
    cost_model: CostModel
    budget: RoundBudget
    calibration: Calibration
    fit: FitConfig  # epochs = --search-epochs
    generator: torch.Generator
    progress: bool = True
    start_trained: bool = True  # False in round 1 of a --from-scratch run (no teacher to learn from)

    def allocate(self, scores: dict[str, torch.Tensor], target: float | None = None) -> dict[str, list[int]]:
        """The lowest-scoring channels per group that meet ``target`` (default: the round's)."""
        return self.budget.allocate(scores, self.cost_model, target)

    def fit_config(self) -> FitConfig:
        return replace(self.fit)


class TrainingCriterion(Criterion):
    """Base class: ``search`` trains and sets ``self.removal``; ``select`` returns it."""

    trains = True

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.removal: dict[str, list[int]] | None = None

    def __call__(self, group) -> torch.Tensor:  # as a Torch-Pruning Importance: the last search's scores
        raise NotImplementedError(f"{self.name} prunes while training; run it through bayesprune run")

    def select(self, graph, cost_model, budget):
        if self.removal is None:
            raise RuntimeError(f"{self.name}: select() before search(); the engine calls search first")
        removal, self.removal = self.removal, None
        return {g.name: removal.get(g.name, []) for g in graph.groups}


def torch_cost(cost_model: CostModel, keep: torch.Tensor, kind: str) -> torch.Tensor:
    """:meth:`CostModel.cost` for fractional kept counts, differentiable in ``keep`` (G,)."""
    i, j, coef = cost_model.pairs[kind]
    linear = torch.as_tensor(cost_model.linear[kind], dtype=keep.dtype, device=keep.device)
    coef = torch.as_tensor(coef, dtype=keep.dtype, device=keep.device)
    i, j = torch.as_tensor(i, device=keep.device), torch.as_tensor(j, device=keep.device)
    return cost_model.constant[kind] + keep @ linear + (keep[i] * keep[j]) @ coef


def split_by_group(values: torch.Tensor, graph: ChannelGraph) -> dict[str, torch.Tensor]:
    """A vector over all channels of ``graph`` (groups in order) as one score tensor per group."""
    out, start = {}, 0
    for group in graph.groups:
        out[group.name] = values[start:start + group.size].float()
        start += group.size
    return out


def channel_mask(graph: ChannelGraph, removal: dict[str, list[int]]) -> torch.Tensor:
    """1 for every channel of ``graph`` (groups in order) that stays, 0 for those in ``removal``."""
    mask = []
    for group in graph.groups:
        keep = torch.ones(group.size)
        keep[torch.as_tensor(removal.get(group.name, []), dtype=torch.long)] = 0.0
        mask.append(keep)
    return torch.cat(mask)


@torch.no_grad()
def silence(graph: ChannelGraph, removal: dict[str, list[int]]) -> None:
    """Make the removed channels' outputs exactly zero (their gated BatchNorm's weight and bias,
    or their conv's filters and bias, times 0), so that the physical cut does not change the
    function the masked network computed while training."""
    gates = ChannelGates(graph)
    fold_gates(gates, channel_mask(graph, removal).to(next(graph.model.parameters()).device))

