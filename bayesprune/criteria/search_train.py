"""Joint search and training: a threshold network prunes dynamically; several teachers distil."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..decision.selector import BudgetedSelector
from ..gates import ChannelGates
from ..distillation import multi_teacher_loss
from ..decision.allocation import removable_counts
from ..training import fit
from ..group_weights import batchnorm_scales, filter_rows, group_size, scatter_sum
from .training_time import SearchContext, TrainingCriterion, silence, torch_cost

FEATURES = 7


def channel_importance(group) -> torch.Tensor:
    """``||W_c|| * |gamma_c|`` summed over the group's producing layers and BatchNorms (the filter's
    size times the scale its BatchNorm gives it; either factor alone when the other is missing)."""
    size = group_size(group)
    norms, n_norms = scatter_sum(size, ((rows.norm(dim=1), idx) for rows, idx in filter_rows(group)))
    gammas, n_gammas = scatter_sum(size, ((g.abs(), idx) for g, idx in batchnorm_scales(group)))
    if n_norms and n_gammas:
        return (norms / n_norms * gammas / n_gammas).float()
    return (norms if n_norms else gammas).float()


def layer_features(importance: list[torch.Tensor], cost_share: np.ndarray) -> torch.Tensor:
    """Per group: depth, log width, share of the cost, spread (CV), skew, share below half the
    mean, and nothing about the labels: what the threshold network sees."""
    rows = []
    depth = np.linspace(0.0, 1.0, len(importance)) if len(importance) > 1 else np.zeros(1)
    for g, values in enumerate(importance):
        mean, std = values.mean(), values.std(unbiased=False).clamp_min(1e-12)
        z = (values - mean) / std
        rows.append([depth[g], np.log2(len(values)) / 10.0, cost_share[g], float(std / mean.clamp_min(1e-12)),
                     float((z ** 3).mean()), float((values < 0.5 * mean).float().mean()), 1.0])
    return torch.tensor(rows, dtype=torch.float32)


class ThresholdNetwork(nn.Module):
    """Layer statistics -> the layer's pruning threshold on standardised importance, in (-3, 3)."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.constant_(self.body[2].bias, -1.0)  # start by masking few channels (z < ~-2.3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return 3.0 * torch.tanh(self.body(features).squeeze(-1))


def threshold_masks(importance: list[torch.Tensor], thresholds: torch.Tensor, caps: np.ndarray,
                    sharpness: float = 10.0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Hard masks ``1[z_c >= t_g]`` (at most ``caps[g]`` removed: the highest-z of the rest are
    kept), with straight-through gradients of the soft masks ``sigmoid(sharpness (z_c - t_g))``;
    also the soft masks (for the budget)."""
    hard_out, soft_out = [], []
    for g, values in enumerate(importance):
        z = (values - values.mean()) / values.std(unbiased=False).clamp_min(1e-12)
        soft = torch.sigmoid(sharpness * (z - thresholds[g]))
        hard = (z >= thresholds[g]).float()
        must_keep = len(values) - int(caps[g])
        if int(hard.sum()) < must_keep:
            hard[torch.argsort(z, descending=True, stable=True)[:must_keep]] = 1.0
        hard_out.append(hard + soft - soft.detach())
        soft_out.append(soft)
    return hard_out, soft_out


class SearchTrain(TrainingCriterion):
    """Lu 2023 (PhD thesis, "A Deep Neural Network Pruning Method Based On Structural Search"),
    contribution 1: pruning as a search run jointly with training, from scratch; a threshold
    generation network sets each layer's pruning threshold from layer statistics during training
    (dynamic pruning: masks are recomputed every step, masked channels keep their weights and can
    return); distillation from several teachers keeps accuracy.

    Our choices where the public description is open:

    - importance is ``||W_c|| |gamma_c|``, standardised per layer;
    - the threshold network is a 7-16-1 MLP on the features of ``layer_features``. It is first
      fitted to the budget alone (``budget_steps`` Adam steps on the penalty, no data), then
      trained with the network (with its own Adam) through straight-through masks, on the task
      loss plus the budget penalty ``lambda (cost(soft masks) / target - 1)^2``;
    - the teachers are the network at the search's start (unless it starts from scratch) and
      frozen dense snapshots taken at every epoch's end (at most ``teachers``, newest kept);
    - the final cut is the smallest set, masked channels first, that meets the budget exactly
      (``--allocation`` and ``--round-to`` do not apply).

    Params: ``teachers``, ``budget_weight`` (lambda), ``temperature`` and ``alpha`` of distillation,
    ``threshold_lr``, ``budget_steps``.
    """

    name = "search-train"
    description = "threshold-network dynamic pruning while training, multi-teacher distillation (Lu 2023)"
    source = "Lu 2023, PhD thesis, contribution 1 (joint search and training)"

    def __init__(self, seed: int = 0, teachers: int = 2, budget_weight: float = 5.0, temperature: float = 4.0,
                 alpha: float = 0.5, threshold_lr: float = 0.02, budget_steps: int = 300):
        super().__init__(seed)
        self.teachers, self.budget_weight = teachers, budget_weight
        self.threshold_lr, self.budget_steps = threshold_lr, budget_steps
        self.temperature, self.alpha = temperature, alpha

    def __call__(self, group) -> torch.Tensor:
        return channel_importance(group)

    def search(self, model, context: SearchContext) -> dict:
        graph, cost_model, device = context.graph, context.cost_model, context.calibration.device
        with torch.random.fork_rng(devices=[]):  # the run's own random stream is left as it was
            torch.manual_seed(self.seed)
            thresholds = ThresholdNetwork().to(device)
        gates = ChannelGates(graph)
        caps = removable_counts(cost_model.sizes, context.budget.max_fraction)
        cost_share = cost_model.shares(context.budget.kind)
        teachers = [_frozen(model)] if context.start_trained else []
        budget_ratios: list[float] = []
        optimizer = torch.optim.Adam(thresholds.parameters(), lr=self.threshold_lr)

        def masks():
            importance = [channel_importance(g.tp_group).to(device) for g in graph.groups]
            t = thresholds(layer_features([v.cpu() for v in importance], cost_share).to(device))
            hard, soft = threshold_masks(importance, t, caps)
            kept = torch.stack([s.sum() for s in soft])
            ratio = torch_cost(cost_model, kept, context.budget.kind) / context.budget.target
            return hard, ratio

        for _ in range(self.budget_steps):  # first meet the budget: no data needed, so masks fit it from step 1
            _, ratio = masks()
            optimizer.zero_grad()
            ((ratio - 1.0) ** 2).backward()
            optimizer.step()

        def loss_fn(net, xb, yb):
            hard, ratio = masks()
            gates.values = torch.cat(hard)
            logits = net(xb)
            with torch.no_grad():
                teacher_logits = [teacher(xb) for teacher in teachers]
            budget_ratios.append(float(ratio.detach()))
            return (multi_teacher_loss(logits, teacher_logits, yb, self.temperature, self.alpha)
                    + self.budget_weight * (ratio - 1.0) ** 2)

        def threshold_step(_step: int) -> None:  # the network's SGD has stepped; now the threshold network
            optimizer.step()
            optimizer.zero_grad()

        def snapshot(_epoch: int) -> None:
            gates.values = None  # the teacher is the dense network
            teachers.append(_frozen(model))
            del teachers[:-self.teachers]

        with gates:
            fit(model, context.calibration.data, context.fit_config(), context.generator, device, context.progress,
                desc="search-train", loss_fn=loss_fn, after_step=threshold_step, after_epoch=snapshot)
        with torch.no_grad():
            importance = [channel_importance(g.tp_group) for g in graph.groups]
            t = thresholds(layer_features(importance, cost_share).to(device)).cpu()
            hard, _ = threshold_masks(importance, t, caps)
        masked = torch.cat(hard) < 0.5
        relative = torch.cat([(v - v.mean()) / v.std(unbiased=False).clamp_min(1e-12) for v in importance])
        budget = context.budget
        selector = BudgetedSelector(cost_model, gates.layer_of_channel.numpy(), budget.target, budget.kind,
                                    budget.max_fraction, "score-global", cap=budget.cap(cost_model))
        kept, _ = selector.select((relative + 100.0 * (~masked).float()).double().numpy())
        self.removal = _removal(graph, kept)
        silence(graph, self.removal)  # the cut then equals the masked network the search trained
        return {"search_epochs": context.fit.epochs, "threshold_masked": int(masked.sum()),
                "removed_by_budget": int((~kept & ~masked.numpy()).sum()),
                "restored_by_budget": int((kept & masked.numpy()).sum()), "teachers": len(teachers),
                "final_budget_ratio": budget_ratios[-1] if budget_ratios else None}


def _frozen(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    for module in teacher.modules():  # the copy carries the student's mask hooks: the teacher is dense
        module._forward_hooks.clear()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _removal(graph, kept: np.ndarray) -> dict[str, list[int]]:
    out, start = {}, 0
    for group in graph.groups:
        out[group.name] = [int(i) for i in np.flatnonzero(~kept[start:start + group.size])]
        start += group.size
    return out
