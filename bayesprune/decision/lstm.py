"""LSTM-guided layer pruning rates: a learned allocation of a global budget to the layers."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..gates import ChannelGates
from ..group_weights import concatenated_filters
from ..progress import progress_bar
from .allocation import least_removal
from .cost import CostModel


class RatePolicy(nn.Module):
    """Reads the layers' descriptors in network order and emits one logit per layer."""

    def __init__(self, features: int, hidden: int = 32):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(descriptors.unsqueeze(0))
        return self.head(out).reshape(-1)


def counts_for(logits: np.ndarray, cost_model: CostModel, target: float, kind: str, cap: np.ndarray) -> np.ndarray:
    """Removal counts ``floor(cap_g sigmoid(logit_g + shift))`` with the smallest ``shift`` that
    meets ``target``: the logits say how layers compare, the shift makes the budget exact."""
    sizes = cost_model.sizes

    def at(shift: float) -> np.ndarray:
        return np.floor(cap / (1.0 + np.exp(-(logits + shift))) + 1e-9).astype(int)

    if cost_model.cost(sizes - at(30.0), kind) > target:  # the policy's shape cannot reach it: take the caps
        return cap.astype(int).copy()
    return least_removal(at, cost_model, target, kind, -30.0, 30.0, steps=60)


class LSTMAllocation:
    """Zhong, Ding, Guo, Han & Wang 2018, IJCAI, "Where to Prune: Using LSTM to Guide End-to-end
    Pruning", and Ding et al. 2021, IEEE TIP 30 (Zhang 2023 thesis, ch. 4): an LSTM reads per-layer
    descriptors in depth order and outputs per-layer pruning rates; it is trained by policy
    gradient (REINFORCE) on the loss of the network pruned at the sampled rates.

    Our choices where the public description is open: descriptors are depth, log width, share
    of the cost, mean filter norm (relative to the network's) and its spread; rates are
    ``max_fraction sigmoid(logit + shift)`` with the shift solved so that every sampled allocation
    meets the global budget exactly; the reward is minus the cross-entropy on the calibration
    batches (the first ``reward_batches``) with each layer's lowest-L2 filters gated to zero (no
    fine-tuning per episode, which keeps an episode at two forward passes; the
    criterion of the run then picks which channels within each layer go); Gaussian exploration
    (sd ``noise``) on the logits with a moving-average baseline, Adam, ``episodes`` episodes.

    Params: ``episodes``, ``noise``, ``lr``, ``hidden``, ``reward_batches``; ``reward`` replaces the network reward
    (a function of the removal counts; for tests and custom objectives).
    """

    name = "lstm"

    def __init__(self, graph, batches, seed: int = 0, episodes: int = 40, noise: float = 0.5, lr: float = 0.02,
                 hidden: int = 32, progress: bool = False, reward: Callable[[np.ndarray], float] | None = None,
                 reward_batches: int = 2):
        self.graph = graph
        self.batches = [b for _, b in zip(range(reward_batches), batches)] if batches is not None else []
        self.seed, self.episodes, self.noise, self.lr, self.hidden = seed, episodes, noise, lr, hidden
        self.progress, self.reward = progress, reward or self._network_reward
        self.policy: RatePolicy | None = None
        self.history: list[float] = []  # reward per episode
        self._orders: list[torch.Tensor] | None = None  # each layer's channels, lowest filter L2 first

    def descriptors(self, cost_model: CostModel) -> torch.Tensor:
        shares = cost_model.shares("macs")
        norms = [concatenated_filters(g.tp_group).norm(dim=1) for g in self.graph.groups]
        overall = torch.cat(norms).mean().clamp_min(1e-12)
        rows = []
        for g, (group, norm) in enumerate(zip(self.graph.groups, norms)):
            rows.append([g / max(1, len(norms) - 1), np.log2(group.size) / 10.0, shares[g],
                         float(norm.mean() / overall), float(norm.std(unbiased=False) / norm.mean().clamp_min(1e-12))])
        return torch.tensor(rows, dtype=torch.float32)

    def counts(self, cost_model: CostModel, target: float, kind: str, cap: np.ndarray, round_to: int = 1,
               orders=None, scores=None) -> np.ndarray:
        """Per-group removal counts (``orders`` and ``scores``, the criterion's, do not matter to the policy)."""
        if self.policy is None:
            self._train(cost_model, target, kind, cap)
        with torch.no_grad():
            logits = self.policy(self.descriptors(cost_model)).double().numpy()
        return counts_for(logits, cost_model, target, kind, cap)

    def _train(self, cost_model: CostModel, target: float, kind: str, cap: np.ndarray) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):  # the run's own random stream is left as it was
            torch.manual_seed(self.seed)
            self.policy = RatePolicy(5, self.hidden)
        optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        descriptors = self.descriptors(cost_model)
        baseline = None
        for _ in progress_bar(range(self.episodes), desc="lstm allocation", enabled=self.progress, leave=False):
            mean = self.policy(descriptors)
            sample = mean.detach() + self.noise * torch.randn(mean.shape, generator=generator)
            reward = float(self.reward(counts_for(sample.double().numpy(), cost_model, target, kind, cap)))
            self.history.append(reward)
            baseline = reward if baseline is None else 0.8 * baseline + 0.2 * reward
            log_prob = torch.distributions.Normal(mean, self.noise).log_prob(sample).sum()
            optimizer.zero_grad()
            (-(reward - baseline) * log_prob).backward()
            optimizer.step()

    @torch.no_grad()
    def _network_reward(self, counts: np.ndarray) -> float:
        model = self.graph.model
        if self._orders is None:  # the network does not change between episodes
            self._orders = [torch.argsort(concatenated_filters(g.tp_group).norm(dim=1), stable=True)
                            for g in self.graph.groups]
        values = []
        for group, order, n in zip(self.graph.groups, self._orders, counts):
            keep = torch.ones(group.size)
            keep[order[:int(n)]] = 0.0
            values.append(keep)
        gates = ChannelGates(self.graph)
        device = next(model.parameters()).device
        gates.values = torch.cat(values).to(device)
        was_training = model.training
        model.eval()
        try:
            with gates:
                losses = [nn.functional.cross_entropy(model(xb), yb).item() for xb, yb in self.batches]
        finally:
            model.train(was_training)
        return -float(np.mean(losses))
