"""BatchNorm-scale criterion of network slimming (Liu et al. 2017)."""
from __future__ import annotations

import torch

from ..errors import ModelError
from ..group_weights import batchnorm_scales, group_size, scatter_sum
from .base import Criterion


class BatchNormScale(Criterion):
    """Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming",
    sec. 3.2: s_j = |gamma_j|; summed over the BatchNorms of a coupled group.

    This is the scoring half only: the L1 penalty on gamma during training belongs to the
    ``slimming`` method, not to this point estimate.
    """

    name = "bn-scale"
    description = "|gamma| of the BatchNorm after each channel (Liu et al. 2017)"
    source = "Liu et al. 2017, ICCV, sec. 3.2"

    def __call__(self, group) -> torch.Tensor:
        scores, found = scatter_sum(group_size(group), ((g.abs(), idx) for g, idx in batchnorm_scales(group)))
        if not found:
            root = group[0].dep.target.module
            raise ModelError(f"criterion bn-scale needs a BatchNorm after every prunable layer, "
                             f"{type(root).__name__} {tuple(root.weight.shape)} has none; choose "
                             "another --criterion (e.g. l1)")
        return scores
