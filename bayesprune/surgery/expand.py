"""Expansion before pruning: widen a trained network without changing its function (Net2Wider).

Chen, Goodfellow & Shlens 2016 ("Net2Net", sec. 2, Net2WiderNet): every channel group of width n
grows to width n' by a mapping ``g: {0..n'-1} -> {0..n-1}`` that keeps ``g(j) = j`` for j < n and
picks a random existing channel for each new one. Producers copy: the new channel j gets channel
``g(j)``'s filter, bias and BatchNorm parameters/statistics. Consumers split: input channel j's
weights become ``W[:, g(j)] / |{j' : g(j') = g(j)}|``, so the copies' outputs add up to the
original one. With ``noise = 0`` the wide network computes exactly the same function. ``noise > 0``
adds Gaussian noise of ``noise * std(filter)`` to the new copies' filters, which breaks their
symmetry so that fine-tuning and pruning can tell them apart (Net2Net recommends adding noise).

The wide network is a built-in architecture with ``width`` multiplied by ``factor`` (see
:func:`bayesprune.nets.build_model`), so it saves and reloads like any other. The seed-003 thesis
(Lu 2023, "expansion before pruning") widens the search space and then prunes back to the
original budget with global group sparsity; this module is the widening step.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..errors import ModelError
from ..groups import ChannelGraph, example_input, is_depthwise
from ..nets import Architecture, build_model


def widen(model: nn.Module, arch: Architecture, factor: float, noise: float = 0.0,
          seed: int = 0) -> tuple[nn.Module, Architecture]:
    """Return ``(wide model, its architecture)``: ``model`` widened by ``factor`` (>= 1)."""
    if factor < 1.0:
        raise ModelError(f"--expand must be >= 1 (a widening factor), got {factor}")
    wide_arch = replace(arch, width=arch.width * factor)
    try:
        wide = build_model(wide_arch)
    except ModelError as exc:
        raise ModelError(f"--expand works on the built-in architectures only: {exc}") from None
    inputs = example_input(arch, device=next(model.parameters()).device)
    wide.to(inputs.device)
    narrow_graph, wide_graph = ChannelGraph(model, inputs), ChannelGraph(wide, inputs)
    narrow_sizes = {g.name: g.size for g in narrow_graph.groups}
    if set(narrow_sizes) != {g.name for g in wide_graph.groups}:
        raise ModelError("--expand needs an unpruned network (its groups must match the widened one)")
    generator = torch.Generator().manual_seed(seed)
    out_map: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}  # positions, "is a new copy"
    in_map: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    for group in wide_graph.groups:
        n, wide_n = narrow_sizes[group.name], group.size
        mapping = torch.cat([torch.arange(n), torch.randint(0, n, (wide_n - n,), generator=generator)])
        copies = torch.bincount(mapping, minlength=n).double()
        for module, local, root in group.layers(out_channels=True):
            out_map[module] = (_positions(module, mapping, local, root), torch.as_tensor(local) >= n)
        for module, local, root in group.layers(out_channels=False):
            if not is_depthwise(module):
                index = _positions(module, mapping, local, root)
                in_map[module] = (index, copies[index])
    with torch.no_grad():
        _copy_mapped(model, wide, out_map, in_map, noise, generator)
    return wide, wide_arch


def _copy_mapped(model, wide, out_map, in_map, noise, generator) -> None:
    narrow_modules = dict(model.named_modules())
    for name, module in wide.named_modules():
        source = narrow_modules[name]
        for key, value in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            tensor = getattr(source, key).detach().clone()
            if module in out_map and tensor.dim() >= 1:
                tensor = tensor[out_map[module][0]]
            if module in in_map and key == "weight" and tensor.dim() >= 2:
                index, copies = in_map[module]
                tensor = tensor[:, index] / copies.to(tensor).reshape((1, -1) + (1,) * (tensor.dim() - 2))
            if noise > 0 and key == "weight" and module in out_map and isinstance(module, (nn.Conv2d, nn.Linear)):
                is_new = out_map[module][1]
                jitter = torch.randn((int(is_new.sum()),) + tensor.shape[1:], generator=generator)
                tensor[is_new] += noise * tensor.std() * jitter.to(tensor)
            value.copy_(tensor)


def _positions(module: nn.Module, mapping: torch.Tensor, local: list[int], root: list[int]) -> torch.Tensor:
    """For each of the module's channel positions in the wide network, the narrow position to copy."""
    if list(local) != list(root):
        raise ModelError(f"--expand needs one-to-one channel groups; {type(module).__name__} maps its "
                         "channels through a reshape or concatenation")
    return mapping[torch.as_tensor(local)]
