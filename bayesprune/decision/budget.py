"""The budget of a run, made and validated once and passed whole.

:class:`Budget` is what the user asks for: keep ``fraction`` of the base network's MACs (or params),
reached in ``rounds`` cuts along a ``schedule``, with an ``allocation`` of layer widths, at most
``max_fraction`` of any group removed per cut and a multiple of ``round_to`` channels kept.
:meth:`Budget.for_round` turns it into a :class:`RoundBudget`: one cut's absolute target, the run's
final target (for criteria that plan ahead) and the same rules, with the allocation object measured
on that round's network where the allocation needs data (``global``, ``lstm``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import BudgetError, ConfigError
from .allocation import ALLOCATIONS, check_reachable, removable_counts, removal_by_counts, rounds_widths
from .cost import CostModel
from .selector import BudgetedSelector

SCHEDULES = ("geometric", "linear")
KINDS = ("macs", "params", "latency")  # latency: decision/latency.py


@dataclass(frozen=True)
class Budget:
    """Target cost as a fraction of the *base* network's MACs (``kind="macs"``) or params, and how
    the rounds reach it."""

    fraction: float
    kind: str = "macs"
    rounds: int = 1
    schedule: str = "geometric"
    allocation: object = "uniform"  # uniform | global | score-global | lstm, or your allocation object
    max_fraction: float = 0.9
    # keep multiples of k channels; "auto": widths at measured latency steps, which the engine
    # measures and puts here as a WidthSteps (decision/width_steps.py)
    round_to: object = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise BudgetError(f"budget kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not (0.0 < self.fraction <= 1.0) or not np.isfinite(self.fraction):
            raise BudgetError(f"target fraction {self.fraction} is outside (0, 1]; give e.g. "
                              "--target-macs 0.5 for half the base MACs")
        if not _whole(self.rounds) or self.rounds < 1:
            raise ConfigError(f"--rounds must be >= 1, got {self.rounds}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown --schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if isinstance(self.allocation, str) and self.allocation not in ALLOCATIONS:
            raise ConfigError(f"unknown --allocation {self.allocation!r}; choose one of {', '.join(ALLOCATIONS)}")
        if not 0.0 < self.max_fraction < 1.0:  # False for nan too
            raise ConfigError(f"--max-prune-fraction must be in (0, 1), got {self.max_fraction}")
        if isinstance(self.round_to, str):
            if self.round_to != "auto":
                raise ConfigError(f"--round-to must be a whole number >= 1 or auto, got {self.round_to!r}")
        elif _whole(self.round_to):
            if self.round_to < 1:
                raise ConfigError(f"--round-to must be >= 1, got {self.round_to}")
        elif not hasattr(self.round_to, "align"):
            raise ConfigError(f"--round-to must be a whole number >= 1 or auto, got {self.round_to!r}")
        if rounds_widths(self.round_to) and self.allocation != "uniform":
            raise BudgetError(f"--round-to {self.round_to} needs --allocation uniform, got --allocation "
                              f"{self.allocation}")

    def targets(self, start: float = 1.0) -> list[float]:
        """Fractions of the base cost to reach after each round, from ``start`` (the network before
        round 1, e.g. 2.25 after a 1.5x expansion) down to ``fraction``.

        geometric: ``start * (final / start) ** (r / R)`` removes the same *share* of what remains
        every round; linear: ``start - (start - final) r / R`` removes the same absolute amount.
        """
        steps = np.arange(1, self.rounds + 1) / self.rounds
        final = self.fraction
        values = start * (final / start) ** steps if self.schedule == "geometric" else start - (start - final) * steps
        return [float(v) for v in values]

    def check_reachable(self, cost_model: CostModel, base_cost: float, start: float = 1.0) -> None:
        """Pre-flight: raise :class:`BudgetError` if round 1's target, or the final one after all
        the rounds' capped cuts, cannot be met on the network of ``cost_model``."""
        targets = self.targets(start)
        check_reachable(cost_model, targets[0] * base_cost, self.kind, self.max_fraction,
                        round_to=self.round_to_of(1))
        check_reachable(cost_model, targets[-1] * base_cost, self.kind, self.max_fraction, self.rounds,
                        self.round_to)

    def round_to_of(self, round_index: int):
        """The width rule of round ``round_index``'s cut: ``round_to`` in the last round only. Only
        the final network's widths decide its speed, and a rounded width cannot be widened again:
        rounding every round drops whole steps in the last one and lands far under the budget
        (measured: 37% of the MACs for a 50% budget in 3 rounds with ``--round-to auto``)."""
        return self.round_to if round_index == self.rounds else 1

    def for_round(self, round_index: int, base_cost: float, start: float = 1.0, allocation=None) -> "RoundBudget":
        """Round ``round_index`` (1-based)'s cut; ``allocation``: the object measured for it (default:
        this budget's allocation name)."""
        targets = self.targets(start)
        return RoundBudget(targets[round_index - 1] * base_cost, targets[-1] * base_cost, self.kind,
                           self.allocation if allocation is None else allocation, self.max_fraction,
                           self.round_to_of(round_index), cuts_left=len(targets) - round_index + 1)


@dataclass(frozen=True)
class RoundBudget:
    """One cut: meet ``target`` (absolute MACs/params) now, knowing the run ends at ``final_target``."""

    target: float
    final_target: float
    kind: str = "macs"
    allocation: object = "uniform"  # a name, or an allocation object with counts(...) (global, lstm)
    max_fraction: float = 0.9
    round_to: object = 1  # k, or a WidthSteps
    cuts_left: int = 1  # this cut and the later rounds' (the run meets final_target after them)

    def final(self) -> "RoundBudget":
        """The rest of the run as one cut of this network under this cut's rules: ``final_target`` now,
        each layer keeping at least the share that ``cuts_left`` cuts at ``max_fraction`` each leave
        (``1 - (1 - max_fraction) ** cuts_left`` may go), for a criterion's prediction of the final cut."""
        return replace(self, target=self.final_target, max_fraction=1.0 - (1.0 - self.max_fraction) ** self.cuts_left,
                       cuts_left=1)

    def check_reachable(self, cost_model: CostModel) -> None:
        """Raise :class:`BudgetError` if this cut cannot meet its target on ``cost_model``'s network.
        The engine calls it once per round, before any scoring; :meth:`selector` and
        :meth:`allocate` then trust it and do not check again."""
        check_reachable(cost_model, self.target, self.kind, self.max_fraction, round_to=self.round_to)

    def cap(self, cost_model: CostModel) -> np.ndarray:
        """Per group, the most channels this cut may remove (``max_fraction``, ``round_to``)."""
        return removable_counts(cost_model.sizes, self.max_fraction, self.round_to)

    def selector(self, cost_model: CostModel, group_of_channel: np.ndarray, target: float | None = None
                 ) -> BudgetedSelector:
        """A :class:`~bayesprune.decision.selector.BudgetedSelector` for ``target`` (default: this
        round's; the final target is the budget of a criterion's prediction, reached in later rounds)."""
        return BudgetedSelector(cost_model, group_of_channel, self.target if target is None else target, self.kind,
                                self.max_fraction, self.allocation, self.round_to, cap=self.cap(cost_model))

    def allocate(self, scores: dict, cost_model: CostModel, target: float | None = None) -> dict[str, list[int]]:
        """The lowest-scoring channels per group that meet ``target`` (default: this round's)."""
        return removal_by_counts(scores, cost_model, self.target if target is None else target, self.kind,
                                 self.allocation, self.cap(cost_model), self.round_to)


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())
