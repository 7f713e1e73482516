"""Fold per-channel multipliers (gate means, annealed masks) into the weights.

A gate ``s_c`` applied after BatchNorm (see :mod:`bayesprune.gates`) is the same function
as BatchNorm with ``gamma_c <- s_c gamma_c`` and ``beta_c <- s_c beta_c``, in training and in
evaluation mode; a gate on a conv/linear output is the same as scaling that output channel's
weights and bias. Folding therefore changes the parameters, never the function, and leaves no
hooks behind: the folded network is a plain network that saves and loads as before.
"""
from __future__ import annotations

import torch
from torch import nn

from ..gates import ChannelGates
from ..errors import ModelError


@torch.no_grad()
def fold_gates(gates: ChannelGates, values: torch.Tensor) -> None:
    """Multiply every gated channel's parameters by ``values[channel]`` (one value per channel)."""
    if values.shape != (gates.num_channels,):
        raise ValueError(f"expected {gates.num_channels} gate values, got shape {tuple(values.shape)}")
    for module, channel_index in gates.targets:
        weight = module.weight
        scale = values[channel_index.to(values.device)].to(weight.device, weight.dtype)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if not module.affine:
                raise ModelError(f"cannot fold channel scales into a BatchNorm without affine parameters "
                                 f"({type(module).__name__}); build it with affine=True")
            weight.mul_(scale)
            module.bias.mul_(scale)
        else:  # conv / linear: output channels are the weight's first dimension
            weight.mul_(scale.reshape((-1,) + (1,) * (weight.dim() - 1)))
            if module.bias is not None:
                module.bias.mul_(scale)
