"""Random scores: the sanity floor every criterion must beat."""
from __future__ import annotations

import torch

from ..group_weights import group_size
from .base import Criterion


class RandomScores(Criterion):
    """Uniform(0, 1) i.i.d. per channel from a seeded generator (Liu et al. 2019, "Rethinking
    the Value of Network Pruning", use random selection as the control)."""

    name = "random"
    description = "uniform random scores from a seeded generator (control)"
    source = "Liu et al. 2019, ICLR, 'Rethinking the Value of Network Pruning'"

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, group) -> torch.Tensor:
        return torch.rand(group_size(group), generator=self.generator, dtype=torch.float64)
