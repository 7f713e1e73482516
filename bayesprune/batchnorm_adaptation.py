"""Adaptive BatchNorm: re-estimate a network's BatchNorm statistics on a few training batches.

Li et al. 2020 (EagleEye, ECCV, sec. 3.2) found that a pruned candidate scored with the running
statistics of the unpruned network says little about its accuracy after fine-tuning: the cut shifts
every later layer's input distribution, and the stale statistics normalize it wrongly. Re-estimating
them on a few batches (no gradient step) made the candidates' scores track their fine-tuned
accuracy (their fig. 3). Fine-tuning does the same re-estimation in its first steps, so a score
after it is closer to what a fine-tuned run starts from.

Here the statistics are the plain average over the batches (``momentum=None``: PyTorch's
cumulative moving average), not EagleEye's exponential average over 50 batches.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def running_norms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers of ``model`` that keep running statistics (what inference normalises with)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Replace every BatchNorm's running mean and variance in ``model`` by their average over
    ``batches`` (``(x, y)`` pairs; ``y`` unused), read in training mode without a gradient step.
    Every module's mode and every BatchNorm's momentum are restored. Returns the number of images read."""
    batches = list(batches)
    if not batches:
        raise ValueError("adapt_batchnorm needs at least one batch: the statistics would be reset to 0/1")
    norms = running_norms(model)
    if not norms:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    images = 0
    try:
        model.eval()  # dropout and anything else stays in inference mode; only the norms gather
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: every batch weighs alike
            norm.train()
        for x, _ in batches:
            model(x)
            images += len(x)
    finally:
        for module, training in modes.items():
            module.train(training)
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    return images
