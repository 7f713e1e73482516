"""A latency budget met on the clock, not only in the table: the final cut of a ``--target-latency``
run is timed against the base network and its table target corrected until the two agree.

Why: the per-layer table (:mod:`bayesprune.decision.latency`, after HALP, Shen et al. 2022) times
each layer alone; inside the network a layer also pays for its neighbours, caches and the framework.
Measured (``analysis/latency_benchmark.py``, PyTorch, batch 64): the cut of the shipped ResNet-20 the
table priced at 0.50 of the base ran at 0.60, the one priced at 0.20 at 0.25.

Method: root finding on the measured latency as a function of the table's target. The final cut is
made at the table target ``t_1 = f`` (the budget), applied to a copy of the network, and timed
interleaved with the base network (:func:`bayesprune.deploy.timing.time_interleaved`: warm-up, then
the medians of alternating calls, so that a slow spell of the machine hits both alike): the measured
fraction ``m_1``. While ``|m_k / f - 1|`` exceeds the tolerance (about the timing noise of an
identical copy, 3% in PyTorch at batch 64 here), the next target is, once the points measured so
far bracket ``f``, the secant through the bracket's ends (regula falsi; kept a tenth of the bracket
off either end, since latency is a staircase in the widths, not a line), and before that a
proportional step from the nearest point (``t f / m``, within a factor 2), for at most ``steps``
cuts. The cut whose measured fraction is nearest ``f`` is kept and recorded with every step, and
then timed once more: the budget is judged on that second, independent measurement
(``measured_fraction``; the chosen step's own is ``selection_fraction``). A cut chosen *because* its
measurement was near the target is, on a noisy clock, likely to have been measured low (the winner's
curse of selecting on a noisy statistic): the small CNN's 20% cut with ``--round-to auto`` measured
0.222 in its run and 0.256 when timed again by ``analysis/latency_benchmark.py``. A
target below what the table says the cut's caps can reach ends the search (recorded as
``unreachable_table_fraction``; the nearest cut measured is kept, and the record says the budget
was not met).

Simplifications: one measurement per cut during the search (a median of ``repeats`` calls) and one
confirmation of the kept cut; no model of the timing noise beyond the tolerance, and a confirmation
that misses ends the search all the same (recorded as not met); only the final round is corrected
(only the final network's speed is the budget); the table itself is not refitted.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import BudgetError

TOLERANCE = 0.03  # about an identical copy's timing noise (PyTorch, batch 64, 2 cores)
STEPS = 5


def measured_ratio(base: nn.Module, candidate: nn.Module, x: torch.Tensor, warmup: int = 5, repeats: int = 30) -> float:
    """The candidate's median latency over the base's, on ``x``, timed interleaved (with the warm-up
    and calls of ``bayesprune latency``)."""
    from ..deploy.timing import time_interleaved

    base.eval()
    candidate.eval()
    with torch.no_grad():
        timings = time_interleaved({"base": lambda: base(x), "candidate": lambda: candidate(x)}, warmup, repeats)
    return timings["candidate"].median_ms / timings["base"].median_ms


@dataclass
class LatencyFeedback:
    """Times cuts against ``base`` (the network the budget is a fraction of) on a batch of ``batch``
    copies of ``example``; :meth:`meet` corrects the final cut's table target (see module)."""

    base: nn.Module
    example: torch.Tensor
    batch: int = 64
    steps: int = STEPS
    tolerance: float = TOLERANCE
    ratio: Callable | None = None  # (base, candidate, x) -> candidate ms / base ms; None: measured_ratio
    confirm: bool = True  # time the kept cut again and judge the budget on that (see module)

    def __post_init__(self):
        self.base = copy.deepcopy(self.base).eval()
        self.x = self.example[:1].expand(self.batch, *self.example.shape[1:]).contiguous()

    def meet(self, select: Callable, cut_copy: Callable, budget, cost_model,
             wanted: float) -> tuple[dict, object, dict]:
        """The removal (and its budget) whose cut runs nearest ``wanted`` of the base's latency.

        ``select(budget) -> removal`` decides a cut; ``cut_copy(removal) -> network`` applies it to a
        copy; ``budget``'s targets are in the table's milliseconds, ``wanted`` of the base's.
        Returns ``(removal, budget, record)``; the criterion's state is that of the returned cut.
        """
        base_cost = budget.final_target / wanted  # the table's milliseconds of the base network
        points, removals, budgets, unreachable = [], [], [], None
        target = wanted

        def off(fraction: float) -> float:  # relative distance of a measured fraction from the budget
            return abs(fraction / wanted - 1)

        for _ in range(self.steps):
            step_budget = replace(budget, target=target * base_cost, final_target=target * base_cost)
            try:
                step_budget.check_reachable(cost_model)
            except BudgetError:
                unreachable = target
                break
            removal, selected = select(step_budget), step_budget
            if removals and removal == removals[-1]:  # the target moved less than one channel: nothing new
                break
            network = cut_copy(removal)
            measured = float((self.ratio or measured_ratio)(self.base, network, self.x))
            if not points or off(measured) < min(off(p["measured_fraction"]) for p in points):
                nearest = network  # the kept cut's copy (argmin's first nearest), timed again without re-cutting
            predicted = float(cost_model.cost(_kept(cost_model, removal), "latency")) / base_cost
            points.append({"table_fraction": target, "predicted_fraction": predicted, "measured_fraction": measured})
            removals.append(removal)
            budgets.append(step_budget)
            if off(measured) <= self.tolerance:
                break
            target = self._next_target(points, wanted)
        if not points:  # only when the budget itself is out of reach, which the engine checked before
            raise BudgetError(f"--target-latency {wanted} cannot be reached under the cut's caps")
        chosen = int(np.argmin([off(p["measured_fraction"]) for p in points]))
        if budgets[chosen] is not selected:  # the criterion's state (posterior, records) must be the kept cut's
            removals[chosen] = select(budgets[chosen])
        selection = points[chosen]["measured_fraction"]
        measured = float((self.ratio or measured_ratio)(self.base, nearest, self.x)) if self.confirm else selection
        record = {"wanted_fraction": wanted, "tolerance": self.tolerance, "batch": self.batch,
                  "threads": torch.get_num_threads(), "steps": points, "chosen": chosen,
                  "selection_fraction": selection, "confirmed": self.confirm, "measured_fraction": measured,
                  "met": off(measured) <= self.tolerance, "unreachable_table_fraction": unreachable}
        return removals[chosen], budgets[chosen], record

    @staticmethod
    def _next_target(points: list[dict], wanted: float) -> float:
        """Regula falsi inside the bracket of the points measured so far, else a proportional step
        from the nearest point (see module)."""
        below = [p for p in points if p["measured_fraction"] <= wanted]
        above = [p for p in points if p["measured_fraction"] > wanted]
        if below and above:
            low = max(below, key=lambda p: p["table_fraction"])
            high = min(above, key=lambda p: p["table_fraction"])
            t0, m0 = low["table_fraction"], low["measured_fraction"]
            t1, m1 = high["table_fraction"], high["measured_fraction"]
            if t0 < t1:  # the secant through the bracket's ends, kept off them (a staircase may not be linear)
                step = t0 + (wanted - m0) * (t1 - t0) / (m1 - m0)
                return float(np.clip(step, t0 + 0.1 * (t1 - t0), t1 - 0.1 * (t1 - t0)))
        nearest = min(points, key=lambda p: abs(p["measured_fraction"] / wanted - 1))
        t, m = nearest["table_fraction"], nearest["measured_fraction"]
        return float(min(1.0, np.clip(t * wanted / m, t / 2, t * 2)))


def feedback_verdict(record: dict) -> str:
    """Whether a :meth:`LatencyFeedback.meet` record met its budget, as said in the log and the report."""
    return ("within" if record["met"] else "NOT within") + f" {record['tolerance']:.0%} of the budget"


def _kept(cost_model, removal: dict) -> np.ndarray:
    """Channels kept per group of ``cost_model`` after ``removal``."""
    return np.array([size - len(removal.get(name, [])) for name, size in zip(cost_model.names, cost_model.sizes)],
                    dtype=np.float64)
