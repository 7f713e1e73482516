"""Latency as a budget: a per-layer table of measured latency over channel widths, and a cost model
that predicts a network's latency from its kept channels with it.

HALP (Shen et al. 2022, "Structural pruning via latency-saliency knapsack", sec. 3.2) prunes against
a latency lookup table measured per layer over its channel counts. Here every convolution and linear
layer is timed alone, on an input of the shape it sees in the network, on a grid of (input, output)
widths (``grid`` points each, from 1 to its full width), at the run's batch size, in PyTorch on this
machine; between grid points the table is interpolated bilinearly. What is not a conv or linear layer
(BatchNorm, activations, pooling, additions, Python overhead) is the measured whole network minus
its tables' layers, timed at full width and cut uniformly to half and a quarter of every group, and
fitted as a fixed overhead plus a cost per BatchNorm output element (elementwise work scales with
the channels). A first version held it fixed at its full-width value: on the shipped networks at
batch 64 it was most of the time, and a 50% latency budget cut the MACs to 5-12%.

:class:`LatencyCostModel` is a :class:`~bayesprune.decision.cost.CostModel` with a third kind,
``"latency"`` (milliseconds): ``cost(keep, "latency")`` uses the tables; the linear and pairwise
coefficients every allocation reads for a channel's marginal cost are a least-squares bilinear fit of
each layer's table (``a + b k_in + c k_out + d k_in k_out``), so every criterion and allocation works
under a latency budget unchanged.

Simplifications: each table is made monotone in both widths (a running maximum over single timings);
layers are timed alone (a layer's time inside the network also depends on caches
and on its neighbours); the grid is coarse (``grid`` widths per side) and the interpolation linear,
except that with ``--round-to auto`` each layer's grid also holds the step widths of the groups it
reads and writes, so the table is measured at the widths a rounded cut keeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..groups import ChannelGraph, is_depthwise
from ..training import forward_with_hooks
from .cost import CostModel, layer_groups

KIND = "latency"
REST_FRACTIONS = (1.0, 0.5, 0.25)  # uniform cuts the rest of the network is timed at


@dataclass
class LayerTable:
    """Milliseconds of one layer at ``in_widths`` x ``out_widths`` (a depthwise layer: in = out)."""

    name: str
    in_widths: np.ndarray
    out_widths: np.ndarray
    ms: np.ndarray  # (len(in_widths), len(out_widths)); depthwise: (1, len(out_widths))
    depthwise: bool = False

    def at(self, k_in, k_out) -> np.ndarray:
        """Bilinear interpolation (clamped to the grid); broadcasts over arrays of widths."""
        k_out = np.asarray(k_out, dtype=np.float64)
        if self.depthwise:
            return np.interp(k_out, self.out_widths, self.ms[0])
        k_in = np.broadcast_to(np.asarray(k_in, dtype=np.float64), k_out.shape)
        i, ti = _bracket(self.in_widths, k_in)
        j, tj = _bracket(self.out_widths, k_out)
        ms = self.ms
        i1, j1 = np.minimum(i + 1, len(self.in_widths) - 1), np.minimum(j + 1, len(self.out_widths) - 1)
        return ((1 - ti) * (1 - tj) * ms[i, j] + ti * (1 - tj) * ms[i1, j] + (1 - ti) * tj * ms[i, j1]
                + ti * tj * ms[i1, j1])

    def to_dict(self) -> dict:
        return {"name": self.name, "in_widths": self.in_widths.tolist(), "out_widths": self.out_widths.tolist(),
                "ms": self.ms.tolist(), "depthwise": self.depthwise}

    @classmethod
    def from_dict(cls, d: dict) -> "LayerTable":
        return cls(d["name"], np.asarray(d["in_widths"], float), np.asarray(d["out_widths"], float),
                   np.asarray(d["ms"], float), bool(d["depthwise"]))


def _bracket(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the grid cell holding x (clamped) and x's position in it, in [0, 1]."""
    if len(grid) == 1:
        return np.zeros(x.shape, dtype=int), np.zeros(x.shape)
    x = np.clip(x, grid[0], grid[-1])
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    return i, (x - grid[i]) / (grid[i + 1] - grid[i])


@dataclass
class LatencyTable:
    """Every conv/linear layer's table (by module name) and the rest of the network's time."""

    layers: dict[str, LayerTable]
    rest_ms: float  # the part of the rest that does not scale with channels
    whole_ms: float  # the network as measured when the table was made
    batch: int
    threads: int
    runtime: str = "torch"
    meta: dict = field(default_factory=dict)
    # the part that scales with channels: ms per element of BatchNorm output, and each BatchNorm's
    # elements per channel (height x width), by module name
    rest_ms_per_element: float = 0.0
    elements_per_channel: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "batch": self.batch, "threads": self.threads, "whole_ms": self.whole_ms,
                "rest_ms": self.rest_ms, "rest_ms_per_element": self.rest_ms_per_element,
                "elements_per_channel": self.elements_per_channel, "meta": self.meta,
                "layers": [t.to_dict() for t in self.layers.values()]}

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyTable":
        layers = [LayerTable.from_dict(t) for t in d["layers"]]
        return cls({t.name: t for t in layers}, d["rest_ms"], d["whole_ms"], d["batch"], d["threads"], d["runtime"],
                   d.get("meta", {}), d.get("rest_ms_per_element", 0.0), d.get("elements_per_channel", {}))

    @classmethod
    def measure(cls, model: nn.Module, example: torch.Tensor, batch: int = 64, grid: int = 6,
                time_layer: Callable | None = None, time_model: Callable | None = None,
                progress: bool = False, steps=None) -> "LatencyTable":
        """Time every conv/linear layer of ``model`` alone on a grid of widths (see the module docstring).

        ``time_layer(module, x) -> ms`` and ``time_model(model, x) -> ms`` default to
        :func:`time_call_ms` (tests put a fake clock there). ``steps``: the network's
        :class:`~bayesprune.decision.width_steps.WidthSteps` (``--round-to auto``), whose widths join
        each layer's grid along the groups it reads and writes, so that the table is measured, not
        interpolated, at the widths a rounded cut keeps."""
        from ..deploy.latency import layer_inputs
        from ..progress import progress_bar

        time_layer = time_layer or time_call_ms
        time_model = time_model or time_call_ms
        x = example[:1].expand(batch, *example.shape[1:]).contiguous()
        model.eval()
        seen = layer_inputs(model, x)
        extra = _step_widths(model, example, steps) if steps is not None else {}
        tables = {}
        with torch.no_grad():
            for name, (module, inputs) in progress_bar(seen.items(), desc="latency table", enabled=progress):
                tables[name] = _layer_table(name, module, inputs, grid, time_layer, *extra.get(module, ((), ())))
        table = cls(tables, 0.0, 0.0, batch, torch.get_num_threads(), elements_per_channel=_bn_elements(model, x))
        table._fit_rest(model, example, x, time_model)
        return table

    def _fit_rest(self, model: nn.Module, example: torch.Tensor, x: torch.Tensor, time_model) -> None:
        """What the layers' tables do not hold (BatchNorm, activations, pooling, additions, overhead):
        the measured whole network minus its tables' layers, at full width and cut uniformly to
        ``REST_FRACTIONS`` of every group, fitted as ``c0 + c1 * (BatchNorm output elements)``
        (least squares, both >= 0): elementwise work scales with the channels, overhead does not."""
        import copy

        whole, layers, elements = [], [], []
        for fraction in REST_FRACTIONS:  # (the dependency graph traces with autograd: no no_grad here)
            net = copy.deepcopy(model).eval()
            graph = ChannelGraph(net, example[:1])
            if fraction < 1.0:
                graph.prune({g.name: list(range(g.size - max(1, round(fraction * g.size)))) for g in graph.groups})
            cost = LatencyCostModel.build(ChannelGraph(net, example[:1]), self)
            with torch.no_grad():
                whole.append(float(time_model(net, x)))
            layers.append(cost.layer_ms(cost.sizes))
            elements.append(cost.elements(cost.sizes))
        rest = np.asarray(whole) - np.asarray(layers)
        design = np.stack([np.ones(len(rest)), np.asarray(elements)], 1)
        c0, c1 = np.linalg.lstsq(design, rest, rcond=None)[0]
        if c1 < 0:  # no share that scales with the channels: a constant rest
            c0, c1 = max(0.0, float(rest.mean())), 0.0
        elif c0 < 0:  # no overhead: the rest in proportion to the elements
            e = design[:, 1]
            c0, c1 = 0.0, max(0.0, float(rest @ e / (e @ e)))
        self.rest_ms, self.rest_ms_per_element, self.whole_ms = float(c0), float(c1), whole[0]
        self.meta["rest_fit"] = {"fractions": list(REST_FRACTIONS), "whole_ms": whole, "layers_ms": layers,
                                 "elements": elements}


def _bn_elements(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Each BatchNorm's output elements per channel (height x width) for input ``x``."""
    sizes: dict[str, int] = {}

    def record(name):
        def hook(_module, _inputs, output):
            sizes[name] = int(np.prod(output.shape[2:])) if output.dim() > 2 else 1
        return hook

    forward_with_hooks(model, [(x[:1], None)], [m.register_forward_hook(record(name))
                                                 for name, m in model.named_modules()
                                                 if isinstance(m, nn.modules.batchnorm._BatchNorm)])
    return sizes


def time_call_ms(module: nn.Module, x: torch.Tensor, warmup: int = 2, repeats: int = 7) -> float:
    """Median wall-clock milliseconds of ``module(x)``."""
    from ..deploy.timing import time_interleaved

    with torch.no_grad():
        return time_interleaved({"call": lambda: module(x)}, warmup, repeats)["call"].median_ms


def _widths(full: int, grid: int, extra=()) -> np.ndarray:
    even = np.round(np.linspace(1, full, min(grid, full))).astype(int)
    return np.unique(np.concatenate([even, [w for w in extra if 1 <= w <= full]])).astype(float)


def _step_widths(model: nn.Module, example: torch.Tensor, steps) -> dict:
    """Per conv/linear module, the step widths of the group it reads and of the group it writes."""
    in_group, out_group = layer_groups(ChannelGraph(model, example[:1]))
    return {module: (steps.allowed[in_group[module]] if module in in_group else (),
                     steps.allowed[out_group[module]] if module in out_group else ())
            for module in set(in_group) | set(out_group)}


def _monotone(ms: np.ndarray) -> np.ndarray:
    """A layer does not get slower by losing channels: the running maximum along both widths, so that
    the noise of single timings cannot make a cut look slower than a wider layer (and the network's
    predicted latency falls with every channel removed, which the budget's bisection needs)."""
    return np.maximum.accumulate(np.maximum.accumulate(ms, axis=0), axis=1)


def _layer_table(name: str, module: nn.Module, x: torch.Tensor, grid: int, time_layer, in_extra=(),
                 out_extra=()) -> LayerTable:
    if isinstance(module, nn.Linear):
        ins, outs = _widths(module.in_features, grid, in_extra), _widths(module.out_features, grid, out_extra)
        ms = np.array([[time_layer(nn.Linear(int(i), int(o)), x[..., :int(i)]) for o in outs] for i in ins])
        return LayerTable(name, ins, outs, _monotone(ms))
    spatial = x.shape[2:]
    if is_depthwise(module):
        outs = _widths(module.out_channels, grid, (*in_extra, *out_extra))
        ms = np.array([[time_layer(_conv_like(module, int(o), int(o), int(o)), torch.randn(len(x), int(o), *spatial))
                        for o in outs]])
        return LayerTable(name, outs, outs, _monotone(ms), depthwise=True)
    ins, outs = _widths(module.in_channels, grid, in_extra), _widths(module.out_channels, grid, out_extra)
    ms = np.array([[time_layer(_conv_like(module, int(i), int(o)), torch.randn(len(x), int(i), *spatial))
                    for o in outs] for i in ins])
    return LayerTable(name, ins, outs, _monotone(ms))


def _conv_like(module: nn.Conv2d, in_channels: int, out_channels: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, module.kernel_size, module.stride, module.padding, module.dilation,
                     groups, module.bias is not None).eval()


@dataclass
class LatencyCostModel(CostModel):
    """A :class:`CostModel` whose ``"latency"`` kind comes from a :class:`LatencyTable`."""

    tables: list = field(default_factory=list)  # LayerTable per timed layer
    in_index: np.ndarray = None  # per timed layer, its input group (-1: fixed at the table's full width)
    out_index: np.ndarray = None
    rest_ms: float = 0.0
    rest_ms_per_element: float = 0.0
    element_weight: np.ndarray = None  # per group: BatchNorm output elements per kept channel
    fixed_elements: float = 0.0  # those of BatchNorms outside every group

    @classmethod
    def build(cls, graph: ChannelGraph, table: LatencyTable) -> "LatencyCostModel":
        base = CostModel.build(graph)
        in_group, out_group = layer_groups(graph)
        tables, ins, outs = [], [], []
        element_weight, fixed = np.zeros(len(base.sizes)), 0.0
        for name, module in graph.model.named_modules():
            if name in table.layers:
                tables.append(table.layers[name])
                ins.append(in_group.get(module, -1))
                outs.append(out_group.get(module, -1))
            if name in table.elements_per_channel:
                group = out_group.get(module, in_group.get(module))
                if group is None:
                    fixed += table.elements_per_channel[name] * module.num_features
                else:
                    element_weight[group] += table.elements_per_channel[name]
        model = cls(base.sizes, base.names, dict(base.constant), dict(base.linear), dict(base.pairs), tables,
                    np.array(ins, dtype=int), np.array(outs, dtype=int), table.rest_ms, table.rest_ms_per_element,
                    element_weight, fixed)
        model._fit_coefficients()
        return model

    def layer_ms(self, keep: np.ndarray):
        """The tables' conv/linear layers at ``keep`` channels per group (broadcasts over rows)."""
        keep = np.asarray(keep, dtype=np.float64)
        total = np.zeros(keep.shape[:-1])
        for table, gi, go in zip(self.tables, self.in_index, self.out_index):
            k_in = keep[..., gi] if gi >= 0 else table.in_widths[-1]
            k_out = keep[..., go] if go >= 0 else np.full(keep.shape[:-1], table.out_widths[-1])
            total = total + table.at(k_in, k_out)
        return total if total.ndim else float(total)

    def elements(self, keep: np.ndarray):
        """BatchNorm output elements per image at ``keep`` channels per group."""
        return np.asarray(keep, dtype=np.float64) @ self.element_weight + self.fixed_elements

    def cost(self, keep: np.ndarray, kind: str = "macs") -> float:
        if kind != KIND:
            return super().cost(keep, kind)
        return self.rest_ms + self.rest_ms_per_element * self.elements(keep) + self.layer_ms(keep)

    def _fit_coefficients(self) -> None:
        """The bilinear least-squares fit of each table, gathered per group (marginal costs)."""
        constant = self.rest_ms + self.rest_ms_per_element * self.fixed_elements
        linear, pairs = self.rest_ms_per_element * self.element_weight, []
        for table, gi, go in zip(self.tables, self.in_index, self.out_index):
            a, b, c, d = _bilinear_fit(table)
            k_in_fixed, k_out_fixed = table.in_widths[-1], table.out_widths[-1]
            if table.depthwise:  # time depends on the one width: a + (b + c) k + d k^2 -> treat d k^2 as linear
                g = go if go >= 0 else gi
                if g >= 0:
                    linear[g] += b + c + d * self.sizes[g]
                    constant += a
                else:
                    constant += a + (b + c) * k_out_fixed + d * k_out_fixed ** 2
                continue
            if gi >= 0 and go >= 0:
                constant += a
                linear[gi] += b
                linear[go] += c
                pairs.append((gi, go, d))
            elif gi >= 0:
                constant += a + c * k_out_fixed
                linear[gi] += b + d * k_out_fixed
            elif go >= 0:
                constant += a + b * k_in_fixed
                linear[go] += c + d * k_in_fixed
            else:
                constant += float(table.at(k_in_fixed, k_out_fixed))
        arr = np.array(pairs, dtype=np.float64).reshape(-1, 3)
        self.constant[KIND], self.linear[KIND] = constant, linear
        self.pairs[KIND] = (arr[:, 0].astype(int), arr[:, 1].astype(int), arr[:, 2])


def _bilinear_fit(table: LayerTable) -> tuple[float, float, float, float]:
    ins, outs = (table.out_widths, table.out_widths) if table.depthwise else (table.in_widths, table.out_widths)
    if table.depthwise:
        k = outs
        design = np.stack([np.ones_like(k), k / 2, k / 2, k * k], 1)
        return tuple(np.linalg.lstsq(design, table.ms[0], rcond=None)[0])
    i, o = np.meshgrid(ins, outs, indexing="ij")
    design = np.stack([np.ones(i.size), i.ravel(), o.ravel(), (i * o).ravel()], 1)
    return tuple(np.linalg.lstsq(design, table.ms.ravel(), rcond=None)[0])  # minimum norm on a 1-wide side
