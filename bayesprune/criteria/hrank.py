"""HRank: the average rank of a channel's feature maps (Lin et al. 2020)."""
from __future__ import annotations

import torch

from .base import Criterion
from .feature_maps import FeatureMapCriterion, Statistic


class _MeanRank(Statistic):
    def batch_values(self, maps):
        if maps.dim() < 4:  # a 1x1 map has rank 1 unless it is zero
            return (maps != 0).float().sum(0)
        return torch.linalg.matrix_rank(maps.double()).double().sum(0)


class HRank(FeatureMapCriterion, Criterion):
    """Lin et al. 2020, "HRank: Filter Pruning using High-Rank Feature Map", sec. 3: the expected
    rank of channel c's H x W feature map, estimated by its mean over the calibration images
    (``torch.linalg.matrix_rank`` with its default tolerance); higher rank keeps. Lin et al. use
    500 images and note the rank is stable after a few batches; here ``--calibration-batches``.
    """

    name = "hrank"
    description = "average rank of the channel's feature maps (Lin et al. 2020)"
    source = "Lin et al. 2020, CVPR, sec. 3"
    statistic_class = _MeanRank
