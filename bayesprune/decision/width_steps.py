"""``--round-to auto``: each group keeps a width at the end of a measured latency step.

Convolution kernels work on blocks of channels (oneDNN on x86 in blocks of 8 or 16, GPU kernels in
tiles), so a layer's time over its width is a staircase more often than a line: cutting 16 channels
to 11 can save nothing. ``--round-to 8`` assumes the staircase; here it is measured. For every
group, the layers that produce it (their output width) and the layers that read it (their input
width) are timed alone, as in the latency table of :mod:`bayesprune.decision.latency` (HALP, Shen
et al. 2022, sec. 3.2: a per-layer latency lookup table), at *every* width from 1 to the group's
size, the others at full width. From the lower envelope of those timings (a narrower layer is never
taken to be slower), the widths worth keeping are found from the top: the full width, then each
narrower width that is at least ``tolerance`` faster than the last one kept. The allocation then
rounds every group's kept channels up to the next such width, as ``--round-to k`` rounds up to a
multiple of k (see :func:`bayesprune.decision.allocation.aligned`).

Simplifications: the steps are measured once, on the network before round 1, for the group's
layers alone with their neighbours at full width; later rounds use the same widths (those above a
group's current size dropped). Single timings are noisy: ``tolerance`` (default 3%) is what a step
must save to count (5%: the plateaus of the shipped networks scatter by up to 4% in single medians),
and a layer whose time falls smoothly keeps widths about that far apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..groups import ChannelGraph, is_depthwise
from .cost import layer_groups
from .latency import _conv_like

TOLERANCE = 0.05


@dataclass(frozen=True)
class WidthSteps:
    """Per group, in the graph's order (which later rounds keep: no group is ever emptied), its
    name, the widths worth keeping (ascending, ending at its full width) and the timings they come
    from (ms of the group's layers at widths 1..size)."""

    names: tuple[str, ...]
    allowed: tuple[tuple[int, ...], ...]
    ms: tuple[tuple[float, ...], ...]
    batch: int
    tolerance: float = TOLERANCE

    def align(self, sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Removal ``counts`` (per group, in order) reduced so that every group keeps one of its
        widths: the smallest at least what it would keep (its current size when none is in between)."""
        if len(sizes) != len(self.names):
            raise ValueError(f"width steps were measured for {len(self.names)} groups, the network has {len(sizes)}")
        out = np.empty(len(sizes), dtype=int)
        for i, (widths, size, count) in enumerate(zip(self.allowed, sizes, counts)):
            kept = min(w for w in [*widths, int(size)] if size - count <= w <= size)
            out[i] = size - kept
        return out

    def to_dict(self) -> dict:
        return {"batch": self.batch, "tolerance": self.tolerance,
                "groups": [{"name": n, "widths": list(w), "ms": list(t)}
                           for n, w, t in zip(self.names, self.allowed, self.ms)]}

    @classmethod
    def from_dict(cls, d: dict) -> "WidthSteps":
        groups = d["groups"]
        return cls(tuple(g["name"] for g in groups), tuple(tuple(g["widths"]) for g in groups),
                   tuple(tuple(g["ms"]) for g in groups), d["batch"], d["tolerance"])

    def __str__(self) -> str:
        return "measured latency steps"

    @classmethod
    def measure(cls, graph: ChannelGraph, example: torch.Tensor, batch: int = 64, tolerance: float = TOLERANCE,
                time_layer: Callable | None = None, progress: bool = False) -> "WidthSteps":
        """Time every group's layers at every width (``time_layer(module, x) -> ms``, default
        :func:`~bayesprune.decision.latency.time_call_ms`; tests put a fake clock there)."""
        from ..deploy.latency import layer_inputs
        from ..progress import progress_bar
        from .latency import time_call_ms

        time_layer = time_layer or time_call_ms
        model = graph.model.eval()
        x = example[:1].expand(batch, *example.shape[1:]).contiguous()
        inputs = layer_inputs(model, x)  # name -> (module, its input)
        in_group, out_group = layer_groups(graph)
        allowed, timings = [], []
        with torch.no_grad():
            for index, group in enumerate(progress_bar(graph.groups, desc="width steps", enabled=progress)):
                layers = [(module, x_in, in_group.get(module) == index, out_group.get(module) == index)
                          for module, x_in in inputs.values()
                          if index in (in_group.get(module), out_group.get(module))]
                ms = np.array([sum(time_layer(*_at_width(module, x_in, width, reads, writes))
                                   for module, x_in, reads, writes in layers)
                               for width in range(1, group.size + 1)])
                allowed.append(step_ends(ms, tolerance))
                timings.append(tuple(float(v) for v in ms))
        return cls(tuple(g.name for g in graph.groups), tuple(allowed), tuple(timings), batch, tolerance)


def step_ends(ms: np.ndarray, tolerance: float = TOLERANCE) -> tuple[int, ...]:
    """Widths (1-based; ``ms[w - 1]`` is width w's time) worth keeping: from the top, the full width,
    then each narrower width whose envelope time (the least time of it and every wider width) is
    at least ``tolerance`` below the last width kept."""
    envelope = np.minimum.accumulate(np.asarray(ms, dtype=np.float64)[::-1])[::-1]
    widths, level = [len(ms)], envelope[-1]
    for width in range(len(ms) - 1, 0, -1):
        if envelope[width - 1] <= level * (1 - tolerance):
            widths.append(width)
            level = envelope[width - 1]
    return tuple(sorted(widths))


def _at_width(module: nn.Module, x: torch.Tensor, width: int, reads: bool, writes: bool):
    """``module`` rebuilt with ``width`` output channels (``writes``) and/or input channels
    (``reads``), and an input of the right shape."""
    if isinstance(module, nn.Linear):
        k_in = width if reads else module.in_features
        return nn.Linear(k_in, width if writes else module.out_features), x[..., :k_in]
    depthwise = is_depthwise(module)
    k_in = width if (reads or (depthwise and writes)) else module.in_channels
    k_out = width if (writes or (depthwise and reads)) else module.out_channels
    return _conv_like(module, k_in, k_out, k_in if depthwise else 1), torch.randn(len(x), k_in, *x.shape[2:])
