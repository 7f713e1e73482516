"""Compensate the next layers for removed channels, from calibration data, before the cut.

When channel c of a group goes, every *consumer* (a conv or linear that reads c as an input
channel) loses the term ``sum_k W[o, c, k] a_c(x + k)``. Two repairs:

- ``mean`` (bias compensation): replace that term by its expectation over calibration data,
  ``delta_o = sum_{c removed} mu_c sum_k W[o, c, k]``, with ``mu_c`` the mean input activation
  of channel c over images and positions, and add ``delta`` to the consumer's bias; a consumer
  without bias that feeds a BatchNorm gets ``running_mean -= delta`` instead, which is the same
  function. Exact for a linear consumer whenever a removed input is constant; for a padded
  convolution, border positions (which see zero padding, not ``mu_c``) make it approximate.
- ``lsq`` (ThiNet-style, Luo et al. 2017, sec. 3.2, generalised from per-channel scaling to
  all kept weights): refit the consumer's weights on the kept input channels, plus an intercept
  that plays the role of ``delta``, by ridge-regularised least squares on sampled output positions
  so that its output matches the unpruned output.

Statistics come from forward pre-hooks over the calibration batches, streaming (sums for the
means; for the least squares, the Gram matrix of at most ``max_rows`` sampled positions per layer,
which is all the refit needs whatever a cut removes, so one gathering serves many cuts). Consumers that are grouped
convolutions, or that have neither a bias nor a following BatchNorm, are skipped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import ChannelGraph
from ..training import forward_with_hooks

METHODS = ("none", "mean", "lsq")


RIDGE = 1e-3  # the least-squares refit's ridge, relative to the Gram matrix's mean diagonal


@dataclass
class _Consumer:
    module: nn.Module
    removed: list[int]  # input-channel indices of the module that the cut removes


@dataclass
class InputStatistics:
    """One conv/linear's inputs over the calibration batches: the per-channel sum over images and
    positions (for ``mean``) and, for ``lsq``, the Gram matrix ``[X 1]^T [X 1]`` of sampled input
    patches ``X`` (rows: positions; columns: ``weight.flatten(1)``'s) with a column of ones appended:
    all that the least-squares refit reads, whatever channels a cut removes."""

    channel_sum: torch.Tensor | None = None
    count: int = 0
    patch_gram: torch.Tensor | None = None
    rows: int = 0

    @property
    def mean(self) -> torch.Tensor:
        return self.channel_sum / max(1, self.count)


@dataclass(frozen=True)
class NamedStatistics:
    """:class:`InputStatistics` gathered for a network by module name (``method`` and ``seed`` as
    :func:`input_statistics` gathered them), so that a copy of that network, or the network itself,
    can be compensated from them without reading the calibration data again."""

    method: str
    seed: int
    layers: dict

    @classmethod
    def of(cls, model: nn.Module, statistics: dict[nn.Module, InputStatistics], method: str,
           seed: int) -> "NamedStatistics":
        """``statistics`` of ``model``'s modules (as :func:`input_statistics` returns them), by name."""
        return cls(method, seed, {name: statistics[m] for name, m in model.named_modules() if m in statistics})

    def for_model(self, model: nn.Module, method: str, seed: int) -> dict[nn.Module, InputStatistics] | None:
        """The statistics keyed by ``model``'s modules, if gathered for ``method`` with ``seed`` (else None)."""
        if (method, seed) != (self.method, self.seed):
            return None
        return {m: self.layers[name] for name, m in model.named_modules() if name in self.layers}


def refittable(module: nn.Module) -> bool:
    """Whether compensation refits ``module`` (grouped convolutions are skipped and counted)."""
    return not (isinstance(module, nn.Conv2d) and module.groups != 1)


def consumers_of(graph: ChannelGraph, removal: dict[str, list[int]]) -> list[_Consumer]:
    """Every conv/linear whose input channels the cut removes, with those input indices."""
    removed: dict[nn.Module, set[int]] = {}
    groups = graph.by_name()
    for name, idxs in removal.items():
        if not idxs:
            continue
        wanted = set(int(i) for i in idxs)
        for module, local, root in groups[name].layers(out_channels=False):
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                removed.setdefault(module, set()).update(l for l, r in zip(local, root) if r in wanted)
    return [_Consumer(m, sorted(r)) for m, r in removed.items() if r]


def input_patches(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Inputs as rows ``(positions, in_channels * kernel)`` in the layout of ``weight.flatten(1)``."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def patch_count(module: nn.Module, x: torch.Tensor) -> int:
    """How many rows :func:`input_patches` has for ``x``, without building them."""
    if isinstance(module, nn.Linear):
        return x.numel() // x.shape[-1]
    height, width = _output_size(module, x)
    return x.shape[0] * height * width


def patches_at(module: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``input_patches(module, x)[rows]``, gathering only those rows: sampling a thousand positions
    of a batch no longer unfolds all of them (the unfold was most of a ``lsq`` cut's time)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])[rows]
    (kernel_h, kernel_w), (stride_h, stride_w), (pad_h, pad_w), (dilation_h, dilation_w) = _geometry(module)
    height, width = _output_size(module, x)
    image, position = rows // (height * width), rows % (height * width)
    ys = (position // width * stride_h)[:, None] + torch.arange(kernel_h, device=x.device) * dilation_h
    xs = (position % width * stride_w)[:, None] + torch.arange(kernel_w, device=x.device) * dilation_w
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h))  # zeros, as unfold pads
    channels = torch.arange(x.shape[1], device=x.device)
    patches = padded[image[:, None, None, None], channels[None, :, None, None], ys[:, None, :, None],
                     xs[:, None, None, :]]  # (rows, C, kh, kw): unfold's column order
    return patches.reshape(len(rows), -1)


def _pair(value) -> tuple[int, int]:
    if isinstance(value, str):
        raise ValueError(f"padding={value!r} is not supported here; give the padding in pixels")
    return (value, value) if isinstance(value, int) else tuple(value)


def _geometry(module: nn.Conv2d) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, dilation), each as (height, width)."""
    return _pair(module.kernel_size), _pair(module.stride), _pair(module.padding), _pair(module.dilation)


def _output_size(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    (kernel_h, kernel_w), (stride_h, stride_w), (pad_h, pad_w), (dilation_h, dilation_w) = _geometry(module)
    return ((x.shape[2] + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) // stride_h + 1,
            (x.shape[3] + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) // stride_w + 1)


@torch.no_grad()
def input_statistics(graph: ChannelGraph, batches, method: str = "mean", modules=None, max_rows: int = 8192,
                     seed: int = 0) -> dict[nn.Module, InputStatistics]:
    """Every conv/linear's (or those of ``modules``) :class:`InputStatistics` over ``batches``: what
    ``method`` needs, gathered once for many cuts of the same network (the width check's candidates,
    a plan's posterior draws). Each layer samples its patches from its own random stream (``seed``
    and its position in the network), so its statistics do not depend on which other layers are
    gathered: gathered for every layer, they are those a single cut's compensation gathers."""
    layers = [m for m in graph.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    wanted = set(layers if modules is None else modules)
    chosen = [(index, m) for index, m in enumerate(layers) if m in wanted]
    statistics = {m: InputStatistics() for _, m in chosen}
    per_batch = max(1, max_rows // 8)

    def hook(index: int, module: nn.Module):
        stats, generator = statistics[module], torch.Generator().manual_seed(seed * 65536 + index)

        def record(_module, inputs):
            x = inputs[0].detach()
            total = x.sum([0] + list(range(2, x.dim()))).double().cpu()
            stats.channel_sum = total if stats.channel_sum is None else stats.channel_sum + total
            stats.count += x.numel() // x.shape[1]
            if method == "lsq" and stats.rows < max_rows:
                pick = torch.randperm(patch_count(module, x), generator=generator)[:per_batch]
                rows = patches_at(module, x, pick.to(x.device)).double().cpu()
                rows = torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype)], 1)
                gram = rows.T @ rows
                stats.patch_gram = gram if stats.patch_gram is None else stats.patch_gram + gram
                stats.rows += len(rows)
        return record

    forward_with_hooks(graph.model, batches, [m.register_forward_pre_hook(hook(i, m)) for i, m in chosen])
    return statistics


@torch.no_grad()
def compensate(graph: ChannelGraph, removal: dict[str, list[int]], batches, method: str = "mean",
               max_rows: int = 8192, ridge: float = RIDGE, seed: int = 0,
               statistics: dict[nn.Module, InputStatistics] | None = None) -> dict:
    """Adjust the consumers of ``removal`` in place (before the cut); return counts for the report.
    ``statistics``: :func:`input_statistics` of this network for ``method``, gathered before (then no
    data is read; ``batches``, ``max_rows`` and ``seed`` are those it was gathered with)."""
    if method not in METHODS:
        raise ValueError(f"unknown compensation {method!r}; choose one of {', '.join(METHODS)}")
    consumers = [c for c in consumers_of(graph, removal) if method != "none"]
    skipped = [c for c in consumers if not refittable(c.module)]
    consumers = [c for c in consumers if c not in skipped]
    if not consumers:
        return {"method": method, "layers": 0, "skipped": len(skipped)}
    if statistics is None:
        statistics = input_statistics(graph, batches, method, [c.module for c in consumers], max_rows, seed)
    unplaced = sum(not _apply(graph, c, statistics[c.module], method, ridge) for c in consumers)
    return {"method": method, "layers": len(consumers) - unplaced, "skipped": len(skipped) + unplaced}


def _apply(graph: ChannelGraph, consumer: _Consumer, statistics: InputStatistics, method: str, ridge: float) -> bool:
    module = consumer.module
    target = _bias_target(graph, module)
    if target is None:
        return False
    weight = module.weight.detach().double().cpu()
    out = weight.shape[0]
    kernel = weight[0, 0].numel() if weight.dim() > 2 else 1
    removed = torch.zeros(weight.shape[1], dtype=torch.bool)
    removed[consumer.removed] = True
    if method == "mean":
        delta = (weight[:, removed].reshape(out, int(removed.sum()), kernel).sum(2) * statistics.mean[removed]).sum(1)
    else:
        if statistics.patch_gram is None:
            raise ValueError("lsq compensation needs input statistics gathered with method='lsq'")
        kept_columns = (~removed).repeat_interleave(kernel)
        design = torch.cat([kept_columns.nonzero().flatten(), torch.tensor([len(kept_columns)])])  # kept, ones
        design_rows = statistics.patch_gram[design]  # rows `design` of [X 1]^T [X 1]
        gram = design_rows[:, design]
        gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        # design^T y with y = X W^T (the unpruned output): rows `design` of [X 1]^T X, times W^T
        solution = torch.linalg.solve(gram, design_rows[:, :-1] @ weight.reshape(out, -1).T)
        new_weight = weight.reshape(out, -1).clone()
        new_weight[:, kept_columns] = solution[:-1].T
        module.weight.copy_(new_weight.reshape(weight.shape).to(module.weight))
        delta = solution[-1]
    target(delta)
    return True


def _bias_target(graph: ChannelGraph, module: nn.Module):
    """A function adding ``delta`` to ``module``'s output, or None when there is nowhere to put it."""
    if module.bias is not None:
        return lambda delta: module.bias.add_(delta.to(module.bias))
    node = graph.dg.module2node.get(module)
    following = [n.module for n in node.outputs] if node is not None else []
    if len(following) == 1 and isinstance(following[0], nn.modules.batchnorm._BatchNorm) \
            and following[0].running_mean is not None:
        bn = following[0]
        return lambda delta: bn.running_mean.sub_(delta.to(bn.running_mean))
    return None
