"""ThiNet: choose channels by how well the NEXT layer's output is rebuilt without them (Luo et al. 2017)."""
from __future__ import annotations

import torch
from torch import nn

from ..surgery.compensate import consumers_of, patch_count, patches_at
from ..training import forward_with_hooks
from .base import Criterion
from .feature_maps import PreparedScores


class ThiNet(PreparedScores, Criterion):
    """Luo et al. 2017, "ThiNet", sec. 3.2 and Algorithm 1: sample (image, position, output
    channel) triples of the layers that *consume* the group's channels; each sample's output is
    ``y = sum_c x_c``, with ``x_c`` channel c's contribution (its input patch times the filter's
    weights); greedily grow the removed set T, always adding the channel that keeps
    ``sum_samples (sum_{c in T} x_c)^2`` smallest. A channel's score is the step at which the greedy
    sequence adds it (higher keeps), so any budget cuts a prefix of that sequence. The paper's
    least-squares rescaling of the kept weights (sec. 3.2) is ``--reparameterize lsq`` (which refits all
    kept weights of the consumer, a superset of the per-channel scaling). Samples: ``samples`` triples
    per consumer, streamed over the calibration batches.
    """

    name = "thinet"
    description = "greedy subset whose removal least changes the next layer's output (Luo et al. 2017)"
    source = "Luo et al. 2017, ICCV, sec. 3.2, Algorithm 1"
    needs_data = True

    def __init__(self, samples: int = 4096, seed: int = 0):
        self.samples, self.seed = samples, seed

    def prepare(self, model, graph, calibration) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        everything = {g.name: list(range(g.size)) for g in graph.groups}
        consumers = [c for c in consumers_of(graph, everything)
                     if not (isinstance(c.module, nn.Conv2d) and c.module.groups != 1)]
        per_batch = max(1, self.samples // max(1, getattr(calibration, "num_batches", 1)))
        contributions: dict[nn.Module, list[torch.Tensor]] = {c.module: [] for c in consumers}

        def hook(module):
            def record(_module, inputs):
                x = inputs[0].detach()
                weight = module.weight.detach()
                out, channels = weight.shape[0], weight.shape[1]
                rows = torch.randint(0, patch_count(module, x), (per_batch,), generator=generator).to(x.device)
                outs = torch.randint(0, out, (per_batch,), generator=generator).to(x.device)
                patches = patches_at(module, x, rows)  # (per_batch, C * K)
                x = patches.reshape(per_batch, channels, -1) * weight[outs].reshape(per_batch, channels, -1)
                contributions[module].append(x.sum(2).double().cpu())  # (samples, C): x_c per sample
            return record

        forward_with_hooks(model, calibration.batches(),
                           [c.module.register_forward_pre_hook(hook(c.module)) for c in consumers])
        scores = []
        for group in graph.groups:
            blocks = []
            for module, local, root in group.layers(out_channels=False):
                if module in contributions and contributions[module]:
                    x = torch.cat(contributions[module])
                    block = torch.zeros(len(x), group.size, dtype=torch.float64)
                    block[:, torch.as_tensor(root)] = x[:, torch.as_tensor(local)]
                    blocks.append(block)
            x = torch.cat(blocks) if blocks else torch.zeros(1, group.size, dtype=torch.float64)
            scores.append(greedy_thinet_order(x))
        self.scores, self.graph = scores, graph

    def group_scores(self, index: int) -> torch.Tensor:
        return self.scores[index]


def greedy_thinet_order(contributions: torch.Tensor) -> torch.Tensor:
    """Algorithm 1 of ThiNet run to the end: the step at which each channel joins the removed set.

    With ``r = sum_{c in T} x_c``, adding j costs ``||r + x_j||^2 = ||r||^2 + 2 r.x_j + ||x_j||^2``;
    ``r.x_j = sum_{c in T} G[c, j]`` with the Gram matrix ``G = X^T X``, updated in O(C) per step.
    """
    gram = contributions.T @ contributions
    channels = len(gram)
    cross = torch.zeros(channels, dtype=torch.float64)  # r . x_j for the current removed set
    available = torch.ones(channels, dtype=torch.bool)
    scores = torch.empty(channels, dtype=torch.float64)
    for step in range(channels):
        cost = 2.0 * cross + gram.diagonal()
        cost[~available] = float("inf")
        chosen = int(torch.argmin(cost))
        scores[chosen] = step
        available[chosen] = False
        cross += gram[chosen]
    return scores
