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
means; at most ``max_rows`` sampled positions for the least squares). Consumers that are grouped
convolutions, or that have neither a bias nor a following BatchNorm, are skipped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import ChannelGraph
from ..training import forward_with_hooks

METHODS = ("none", "mean", "lsq")


@dataclass
class _Consumer:
    module: nn.Module
    removed: list[int]  # input-channel indices of the module that the cut removes
    input_sum: torch.Tensor | None = None
    count: int = 0
    rows_x: list[torch.Tensor] = field(default_factory=list)  # sampled input patches (lsq)


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


@torch.no_grad()
def input_means(graph: ChannelGraph, batches) -> dict[nn.Module, torch.Tensor]:
    """Every conv/linear's mean input per channel over ``batches``: what ``mean`` compensation
    needs, gathered once for many cuts of the same network (e.g. the posterior draws of a plan)."""
    modules = [m for m in graph.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    consumers = [_Consumer(m, []) for m in modules]
    _gather(graph, consumers, batches, "mean", max_rows=0, seed=0)
    return {c.module: c.input_sum / max(1, c.count) for c in consumers if c.input_sum is not None}


@torch.no_grad()
def compensate(graph: ChannelGraph, removal: dict[str, list[int]], batches, method: str = "mean",
               max_rows: int = 8192, ridge: float = 1e-3, seed: int = 0,
               means: dict[nn.Module, torch.Tensor] | None = None) -> dict:
    """Adjust the consumers of ``removal`` in place (before the cut); return counts for the report.
    ``means``: :func:`input_means` of this network, gathered before (``mean`` then reads no data)."""
    if method not in METHODS:
        raise ValueError(f"unknown compensation {method!r}; choose one of {', '.join(METHODS)}")
    consumers = [c for c in consumers_of(graph, removal) if method != "none"]
    skipped = [c for c in consumers if isinstance(c.module, nn.Conv2d) and c.module.groups != 1]
    consumers = [c for c in consumers if c not in skipped]
    if not consumers:
        return {"method": method, "layers": 0, "skipped": len(skipped)}
    if method == "mean" and means is not None:
        for consumer in consumers:
            consumer.input_sum, consumer.count = means[consumer.module], 1
    else:
        _gather(graph, consumers, batches, method, max_rows, seed)
    unplaced = sum(not _apply(graph, c, method, ridge) for c in consumers)
    return {"method": method, "layers": len(consumers) - unplaced, "skipped": len(skipped) + unplaced}


def _gather(graph: ChannelGraph, consumers: list[_Consumer], batches, method: str, max_rows: int, seed: int) -> None:
    """Stream the consumers' input sums (and, for ``lsq``, sampled input rows) over ``batches``."""
    generator = torch.Generator().manual_seed(seed)
    per_batch = max(1, max_rows // 8)

    def hook(consumer: _Consumer):
        def record(_module, inputs):
            x = inputs[0].detach()
            dims = [0] + list(range(2, x.dim()))
            total = x.sum(dims).double().cpu()
            consumer.input_sum = total if consumer.input_sum is None else consumer.input_sum + total
            consumer.count += x.numel() // x.shape[1]
            if method == "lsq" and sum(len(r) for r in consumer.rows_x) < max_rows:
                rows = input_patches(consumer.module, x)
                pick = torch.randperm(len(rows), generator=generator)[:per_batch].to(rows.device)
                consumer.rows_x.append(rows[pick].double().cpu())
        return record

    forward_with_hooks(graph.model, batches, [c.module.register_forward_pre_hook(hook(c)) for c in consumers])


def _apply(graph: ChannelGraph, consumer: _Consumer, method: str, ridge: float) -> bool:
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
        mean = consumer.input_sum / max(1, consumer.count)
        delta = (weight[:, removed].reshape(out, int(removed.sum()), kernel).sum(2) * mean[removed]).sum(1)
    else:
        x = torch.cat(consumer.rows_x)
        y = x @ weight.reshape(out, -1).T
        kept_columns = (~removed).repeat_interleave(kernel)
        design = torch.cat([x[:, kept_columns], torch.ones(len(x), 1, dtype=x.dtype)], 1)
        gram = design.T @ design
        gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        solution = torch.linalg.solve(gram, design.T @ y)  # (kept * kernel + 1, out)
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
