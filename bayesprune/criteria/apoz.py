"""Average percentage of zeros (APoZ) of a channel's activations (Hu et al. 2016)."""
from __future__ import annotations

import torch

from .base import Criterion
from .feature_maps import FeatureMapCriterion, Statistic


class _ZeroFraction(Statistic):
    def batch_values(self, maps):
        return (maps == 0).flatten(2).float().mean(2).sum(0) if maps.dim() > 2 else (maps == 0).float().sum(0)


class APoZ(FeatureMapCriterion, Criterion):
    """Hu et al. 2016, "Network Trimming", eq. 1: APoZ_c = sum_k sum_j [O_c,j(k) = 0] / (N M),
    the fraction of zero ReLU outputs of channel c over N images and M positions; score
    ``1 - APoZ`` (a channel that is mostly zero carries little). Feature maps as in
    :mod:`bayesprune.criteria.feature_maps`; a coupled group averages its layers' fractions.
    """

    name = "apoz"
    description = "1 - average percentage of zero activations (Hu et al. 2016)"
    source = "Hu et al. 2016, arXiv:1607.03250, eq. 1"
    statistic_class = _ZeroFraction

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        return 1.0 - values
