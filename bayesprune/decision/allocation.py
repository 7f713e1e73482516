"""Turn per-channel scores into a set of channels to remove that meets a MACs/params budget.

The allocations, objects behind one ``counts(cost_model, target, kind, cap, round_to, orders=...,
scores=...)`` contract (names are resolved to them once, at the edge):

- ``uniform``: every group loses the same fraction of its channels, its lowest-scoring ones; the
  fraction is the smallest that meets the budget (bisection; the cost is monotone in it).
- ``global``: layer widths from the expected loss of each cut per MAC saved
  (:class:`~bayesprune.decision.expected_loss.ExpectedLossWidths`, built by the engine from the
  calibration data; ``bayes``/``bayes-svi`` use their own posterior instead);
- ``score-global``: channels of all groups ranked together by score divided by their group's mean
  score and removed lowest first (Torch-Pruning's ``global_pruning`` style; scores of different
  layers are not comparable and MACs are ignored: kept for comparison);
- ``lstm``: per-layer rates from an LSTM policy (:class:`~bayesprune.decision.lstm.LSTMAllocation`).

Both keep at least one channel and at most remove ``max_fraction`` of any group: a layer pruned
to nothing disconnects the network, and a layer pruned to a sliver collapses accuracy.

``round_to=k`` (uniform allocation) keeps a multiple of k channels in every group (all of a group
smaller than k): CPU and GPU convolution kernels work on channel blocks (e.g. oneDNN's 8 or 16),
and a layer cut from 16 to 11 channels costs about as much time as one of 16.
``round_to`` may also be a :class:`~bayesprune.decision.width_steps.WidthSteps` (``--round-to
auto``): every group keeps one of the widths where its measured latency steps down. Rounded
uniform cuts then give steps back, group by group, while the budget holds (:func:`restore_steps`):
rounding alone can land far under the budget. In a run of several rounds only the last cut rounds
(:meth:`~bayesprune.decision.budget.Budget.round_to_of`): the final network's widths are what runs.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import BudgetError
from .cost import CostModel

ALLOCATIONS = ("uniform", "global", "score-global", "lstm")
MEASURED = {"global": "ExpectedLossWidths.measure(model, graph, calibration)",  # allocations built from data
            "lstm": "LSTMAllocation(graph, batches)"}


class UniformWidths:
    """``uniform``: every group loses the same fraction of its channels (the smallest that meets the
    budget; bisection, since the cost is monotone in it)."""

    name = "uniform"

    def counts(self, cost_model: CostModel, target: float, kind: str, cap: np.ndarray, round_to: int = 1,
               orders=None, scores=None) -> np.ndarray:
        return uniform_counts(cost_model, target, kind, cap, round_to)


class ScoreGlobalWidths:
    """``score-global``: channels of all groups ranked together by score over their group's mean
    score, lowest removed first (Torch-Pruning's ``global_pruning`` style; kept for comparison)."""

    name = "score-global"

    def counts(self, cost_model: CostModel, target: float, kind: str, cap: np.ndarray, round_to: int = 1,
               orders=None, scores=None) -> np.ndarray:
        if scores is None or orders is None:
            raise TypeError("score-global widths need the criterion's scores and each layer's order")
        return _global_counts(scores, cost_model, target, kind, cap, orders)


NAMED = {"uniform": UniformWidths(), "score-global": ScoreGlobalWidths()}  # allocations that need no data


def as_allocation(method):
    """An allocation object: ``method`` itself, or the one a name stands for (names of allocations
    measured on the network cannot be resolved here: the engine builds those)."""
    if not isinstance(method, str):
        return method
    if method in MEASURED:
        raise BudgetError(f"the {method} allocation is measured on the network: pass an {MEASURED[method]} "
                          f"object (the engine builds it for --allocation {method})")
    if method not in NAMED:
        raise BudgetError(f"unknown allocation {method!r}; choose one of {', '.join(ALLOCATIONS)}")
    return NAMED[method]


def aligned(sizes: np.ndarray, counts: np.ndarray, round_to=1) -> np.ndarray:
    """Removal counts reduced so that every group keeps a multiple of ``round_to`` channels, or (a
    :class:`~bayesprune.decision.width_steps.WidthSteps`, ``--round-to auto``) one of its measured widths."""
    if not _is_multiple(round_to):
        return round_to.align(sizes, counts)
    if round_to <= 1:
        return counts
    kept = np.minimum(sizes, np.ceil((sizes - counts) / round_to) * round_to)
    return (sizes - kept).astype(int)


def rounds_widths(round_to) -> bool:
    """Whether ``round_to`` constrains the kept widths (a multiple above 1, or measured steps)."""
    return not _is_multiple(round_to) or round_to > 1


def _is_multiple(round_to) -> bool:
    return isinstance(round_to, (int, np.integer))


def removable_counts(sizes: np.ndarray, max_fraction: float, round_to: int = 1) -> np.ndarray:
    return aligned(sizes, np.minimum(np.floor(max_fraction * sizes + 1e-9), sizes - 1).astype(int), round_to)


def check_reachable(cost_model: CostModel, target: float, kind: str, max_fraction: float, rounds: int = 1,
                    round_to: int = 1) -> None:
    """Raise :class:`BudgetError` if removing ``max_fraction`` of every group in each of ``rounds``
    cuts (the last keeping multiples of ``round_to``, as the rounds do) still misses ``target``."""
    sizes = cost_model.sizes.copy()
    for index in range(rounds):
        sizes = sizes - removable_counts(sizes, max_fraction, round_to if index == rounds - 1 else 1)
    floor_cost = cost_model.cost(sizes, kind)
    if floor_cost > target:
        full = cost_model.full(kind)
        raise BudgetError(f"the {kind} target ({target / full:.3f} of the current network) cannot be "
                          f"met without emptying layers: at most {max_fraction:.0%} of each layer's "
                          f"channels may go per cut{_rounding(round_to)}, "
                          f"which reaches {floor_cost / full:.3f}; raise the target or --max-prune-fraction")


def _rounding(round_to) -> str:
    if not rounds_widths(round_to):
        return ""
    return f" (keeping multiples of {round_to})" if _is_multiple(round_to) else f" (keeping {round_to})"


def allocate(scores: dict[str, torch.Tensor], cost_model: CostModel, target: float, kind: str = "macs",
             method="uniform", max_fraction: float = 0.9, round_to: int = 1) -> dict[str, list[int]]:
    """Channels to remove per group (local indices, lowest score first) so that cost <= ``target``.

    ``target`` is an absolute MACs/params count; ``method`` is an allocation object, whose
    ``counts(cost_model, target, kind, cap, round_to, orders=..., scores=...)`` gives the per-group
    counts (:class:`UniformWidths`, :class:`ScoreGlobalWidths`,
    :class:`~bayesprune.decision.expected_loss.ExpectedLossWidths`,
    :class:`~bayesprune.decision.lstm.LSTMAllocation`), or the name of one that needs no data;
    ``orders`` are the groups' channels, lowest score first. Raises :class:`BudgetError` if even
    the maximal removal allowed by ``max_fraction`` stays above it.
    """
    if cost_model.cost(cost_model.sizes, kind) > target:
        check_reachable(cost_model, target, kind, max_fraction, round_to=round_to)
    return removal_by_counts(scores, cost_model, target, kind, method,
                             removable_counts(cost_model.sizes, max_fraction, round_to), round_to)


def removal_by_counts(scores: dict[str, torch.Tensor], cost_model: CostModel, target: float, kind: str, method,
                      cap: np.ndarray, round_to=1) -> dict[str, list[int]]:
    """:func:`allocate` for a caller that has checked the target is reachable under the per-group
    ``cap`` (the engine, once per round: :meth:`~bayesprune.decision.budget.RoundBudget.check_reachable`)."""
    method = as_allocation(method)
    orders = [np.argsort(scores[name].numpy(), kind="stable") for name in cost_model.names]
    if rounds_widths(round_to) and not isinstance(method, UniformWidths):
        raise BudgetError("--round-to works with --allocation uniform only")
    if cost_model.cost(cost_model.sizes, kind) <= target:
        return {name: [] for name in cost_model.names}
    counts = method.counts(cost_model, target, kind, cap, round_to, orders=orders, scores=scores)
    return {name: sorted(int(i) for i in order[:n]) for name, order, n in zip(cost_model.names, orders, counts)}


def uniform_counts(cost_model: CostModel, target: float, kind: str, cap: np.ndarray,
                   round_to: int = 1) -> np.ndarray:
    sizes = cost_model.sizes

    def counts_at(fraction: float) -> np.ndarray:  # monotone in fraction, so bisection works
        return aligned(sizes, np.minimum(np.floor(fraction * sizes + 1e-9).astype(int), cap), round_to)

    counts = least_removal(counts_at, cost_model, target, kind, 0.0, 1.0)
    return restore_steps(cost_model, target, kind, counts, round_to) if rounds_widths(round_to) else counts


def restore_steps(cost_model: CostModel, target: float, kind: str, counts: np.ndarray, round_to) -> np.ndarray:
    """Rounded widths overshoot: one more fraction step of the uniform cut can drop every group a
    whole width step (16 of 32 channels), far below ``target``. Give back steps, one group at a
    time, the one that restores the most channels per unit of cost, while the cut still meets
    ``target``: the cut ends as close under it as the steps allow (no longer exactly uniform)."""
    sizes, counts = cost_model.sizes, np.asarray(counts).copy()
    while True:
        up = aligned(sizes, np.maximum(counts - 1, 0), round_to)  # each group one step wider
        now = cost_model.cost(sizes - counts, kind)
        best, best_gain = None, 0.0
        for group in np.flatnonzero(up < counts):
            trial = counts.copy()
            trial[group] = up[group]
            cost = cost_model.cost(sizes - trial, kind)
            if cost <= target:
                gain = (counts[group] - up[group]) / max(cost - now, 1e-12)
                if gain > best_gain:
                    best, best_gain = trial, gain
        if best is None:
            return counts
        counts = best


def least_removal(counts_at, cost_model: CostModel, target: float, kind: str, low: float, high: float,
                  steps: int = 50) -> np.ndarray:
    """``counts_at(x)`` for the smallest ``x`` in ``[low, high]`` (bisection) whose removal meets
    ``target``; ``counts_at`` must remove more as ``x`` grows."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        if cost_model.cost(cost_model.sizes - counts_at(mid), kind) <= target:
            high = mid
        else:
            low = mid
    return counts_at(high)


def _global_counts(scores, cost_model: CostModel, target: float, kind: str, cap: np.ndarray, orders) -> np.ndarray:
    sizes = cost_model.sizes
    candidates = []
    for gi, name in enumerate(cost_model.names):
        s = scores[name].double().numpy()
        scale = s.mean() if s.mean() > 0 else 1.0
        ranked = s[orders[gi]] / scale
        candidates += [(ranked[r], gi, r) for r in range(cap[gi])]
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    counts = np.zeros(len(sizes), dtype=int)
    for _, gi, _rank in candidates:
        counts[gi] += 1  # ranks within a group come in order, so counts[gi] == rank + 1
        if cost_model.cost(sizes - counts, kind) <= target:
            break
    return counts
