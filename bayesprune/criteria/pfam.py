"""PFAM: soft filter pruning guided by attention over each layer's filters."""
from __future__ import annotations

import torch

from ..groups import ChannelGraph
from ..training import fit
from ..group_weights import concatenated_filters
from .training_time import SearchContext, TrainingCriterion


def filter_attention(filters: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Row-stochastic attention between a layer's filters: ``A[i, j] = softmax_j(cos(F_i, F_j) / t)``
    over ``j != i`` (a filter's similarity to itself says nothing about its dependence on others)."""
    unit = filters / filters.norm(dim=1, keepdim=True).clamp_min(1e-12)
    logits = unit @ unit.T / temperature
    logits.fill_diagonal_(float("-inf"))
    return torch.softmax(logits, dim=1) if len(filters) > 1 else torch.ones(1, 1, dtype=filters.dtype)


def attention_scores(group, temperature: float = 0.5) -> torch.Tensor:
    """Attention each filter *receives* from the layer's others, ``sum_i A[i, j]``: how strongly
    the layer's filters depend on it. The least-correlated filters score lowest."""
    return filter_attention(concatenated_filters(group), temperature).sum(0)


class PFAM(TrainingCriterion):
    """Zhang 2023 (PhD thesis, Lancaster), ch. 3 "Pruning Filter with an Attention Mechanism":
    after each training epoch the filters least correlated with the rest of their layer under an
    attention module are soft-pruned (zeroed) and may be rebuilt by the next epoch's updates
    (soft filter pruning, He et al. 2018, IJCAI); no pre-trained model is needed.

    Our choices where the public description is open: the attention module is parameter-free
    scaled cosine attention over the flattened filters (``filter_attention``; temperature 0.5,
    self excluded) rather than a trained one; a filter's score is the attention it receives;
    every epoch zeroes the round's whole budget (SFP's constant rate), counted by the run's
    allocation; only the filters are zeroed (BatchNorm kept, as in SFP), so a zeroed channel
    outputs a constant that ``--reparameterize mean`` moves into the next layer's bias at the cut.

    Params: ``temperature`` of the attention softmax.
    """

    name = "pfam"
    description = "attention-guided soft filter pruning during training (Zhang 2023 thesis, ch. 3)"
    source = "Zhang 2023, PhD thesis (Lancaster), ch. 3; soft pruning as He et al. 2018 (SFP)"

    def __init__(self, seed: int = 0, temperature: float = 0.5):
        super().__init__(seed)
        self.temperature = temperature

    def __call__(self, group) -> torch.Tensor:
        return attention_scores(group, self.temperature)

    def soft_prune(self, context: SearchContext) -> dict[str, list[int]]:
        """Zero the filters of the lowest-attention channels that meet the round's budget."""
        graph = context.graph
        removal = context.allocate(self.score(graph))
        zero_filters(graph, removal)
        return removal

    def search(self, model, context: SearchContext) -> dict:
        zeroed: list[dict] = []
        fit(model, context.calibration.data, context.fit_config(), context.generator, context.calibration.device,
            context.progress, desc="pfam search", after_epoch=lambda _epoch: zeroed.append(self.soft_prune(context)))
        if not zeroed:  # --search-epochs 0: one soft-pruning step on the network as it is
            zeroed.append(self.soft_prune(context))
        self.removal = zeroed[-1]
        regrown = _regrown(zeroed)
        return {"search_epochs": context.fit.epochs, "soft_prunings": len(zeroed), "regrown_channels": regrown}


@torch.no_grad()
def zero_filters(graph: ChannelGraph, removal: dict[str, list[int]]) -> None:
    """Set the incoming weights (and biases) of the removed channels of every producing layer to 0."""
    for group in graph.groups:
        idxs = set(removal.get(group.name, []))
        if not idxs:
            continue
        for module, local, root in group.layers(out_channels=True):
            if not isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                continue
            rows = torch.as_tensor([lo for lo, ro in zip(local, root) if ro in idxs], dtype=torch.long)
            module.weight[rows] = 0.0
            if module.bias is not None:
                module.bias[rows] = 0.0


def _regrown(zeroed: list[dict]) -> int:
    """Channels zeroed at one epoch's end and kept at the next (the soft pruning's second chances)."""
    count = 0
    for before, after in zip(zeroed, zeroed[1:]):
        count += sum(len(set(idxs) - set(after.get(name, []))) for name, idxs in before.items())
    return count


__all__ = ["PFAM", "attention_scores", "filter_attention", "zero_filters"]
