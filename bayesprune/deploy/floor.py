"""What a channel cut cannot speed up: the floor network and the quotient's Amdahl ceiling.

The floor network is the base with every prunable group cut to one channel. What it still costs is
what no channel cut removes: the layers no group covers (the stem's input, pooling, the classifier's
bias) and the runtime's fixed cost per layer and call. By Amdahl's law (Amdahl 1967, "Validity of
the single processor approach to achieving large scale computing capabilities", AFIPS) that share
bounds the speed-up of any cut: ``bayesprune latency`` times the floor with base and pruned network
and prints each row's ceiling beside the measured quotient (latency speed-up / MACs speed-up), so a
user sees whether a miss is the hardware's (the ceiling is low) or the layers' (narrow layers use the
hardware less well than wide ones).
"""
from __future__ import annotations

import copy
from typing import NamedTuple

from torch import nn


def floor_network(base: nn.Module, inputs) -> nn.Module:
    """A copy of ``base`` with every prunable group cut to one channel (``base`` is left as it is)."""
    from ..groups import ChannelGraph

    floor = copy.deepcopy(base)
    graph = ChannelGraph(floor, inputs)
    graph.prune({group.name: list(range(1, group.size)) for group in graph.groups})
    return floor.eval()


class Floor(NamedTuple):
    """The floor network's MACs and latency as fractions of the base network's."""

    macs_ratio: float
    latency_ratio: float


def quotient_ceiling(macs_ratio: float, floor: Floor) -> float:
    """The quotient (latency speed-up / MACs speed-up) a cut to ``macs_ratio`` of the MACs could
    reach at best (Amdahl 1967): the floor network's latency ``L0`` (a fraction of the base's), less
    the share its own MACs ``m0`` would explain, does not shrink with channels,
    ``s = (L0 - m0) / (1 - m0)``. If all the rest shrank in proportion to the MACs, the cut would run
    in ``s + (1 - s) m`` of the base's time, a quotient of ``m / (s + (1 - s) m)``. A ceiling as long
    as narrower layers are not more efficient per MAC than wide ones (usually they are less: smaller
    matrix products use the hardware less well)."""
    serial = (floor.latency_ratio - floor.macs_ratio) / (1 - floor.macs_ratio)
    return macs_ratio / (serial + (1 - serial) * macs_ratio)


def speedups(row: dict, macs_ratio: float, floor_macs_ratio: float | None = None) -> dict:
    """One timed row's (``{"base": {"median_ms"}, "pruned": ..., ["floor": ...]}``) speed-ups against
    the base, their quotient (latency speed-up / MACs speed-up) and, with the floor network timed
    (``floor_macs_ratio``: its MACs / the base's), the quotient's ceiling (:func:`quotient_ceiling`)."""
    base_ms = row["base"]["median_ms"]
    latency_speedup = base_ms / row["pruned"]["median_ms"]
    values = {"macs_speedup": 1 / macs_ratio, "latency_speedup": latency_speedup,
              "quotient": latency_speedup * macs_ratio}
    if floor_macs_ratio is not None and "floor" in row:
        floor = Floor(floor_macs_ratio, row["floor"]["median_ms"] / base_ms)
        values.update(quotient_ceiling=quotient_ceiling(macs_ratio, floor), floor_macs_ratio=floor.macs_ratio,
                      floor_latency_ratio=floor.latency_ratio)
    return values
