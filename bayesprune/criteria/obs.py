"""Optimal Brain Surgeon for channels: remove first the channel whose loss the least-squares refit
of the kept channels repairs best (Hassibi & Stork 1993; Frantar & Alistarh 2022)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..errors import ConfigError
from ..surgery.compensate import RIDGE, NamedStatistics, consumers_of, input_statistics, refittable
from ..surgery.residual import RefitProblem, refit_problem, shares_of_prefixes, zeroed_matrix
from .base import Criterion
from .feature_maps import PreparedScores


class OptimalBrainSurgeon(PreparedScores, Criterion):
    """Greedy backward removal priced after the refit ``--reparameterize lsq`` makes.

    Each consumer of a group (the conv/linear layers that read its channels) is a least-squares
    problem in its input patches: with ``H = [X 1]^T [X 1]`` (ridged by 1e-3 of its mean diagonal) and
    ``P = H^-1``, removing the columns ``B`` of one input channel and refitting all the others
    (and the bias) raises its summed squared output error by ``tr(W_B (P_BB)^-1 W_B^T)``
    (the saliency and update of Optimal Brain Surgeon, Hassibi & Stork 1993, for a block of
    weights shared by every output row, as Frantar & Alistarh 2022, "Optimal Brain Compression",
    write them for groups of weights; equation numbers not checked against the papers here). A channel's
    price is that sum over the group's consumers. The cheapest channel goes, every consumer's
    kept weights take the optimal update ``W <- W - W_B (P_BB)^-1 P_B:`` and ``P`` loses ``B``
    (``P <- P - P_:B (P_BB)^-1 P_B:``), and the next channel is priced on the updated problem. A
    channel's score is the position at which it goes (higher keeps): any budget cuts a prefix,
    which is the order the refit then repairs. Layers wider than ``steps`` channels remove the
    ``ceil(width / steps)`` cheapest together per update (exact for ResNet-20's widths, <= 64).

    Unlike ThiNet (:mod:`~bayesprune.criteria.thinet`), which prices a removed set by the output
    error *before* any refit and rescales afterwards, here every step assumes the refit: a channel
    the kept ones predict linearly is nearly free. Statistics: the ``lsq`` refit's own sampled
    patches (:func:`~bayesprune.surgery.compensate.input_statistics`), so a run with ``--reparameterize
    lsq`` refits from the same Gram matrices without reading the data again.
    The greedy pass also records the refit's error of every prefix of its order; with the zeroed
    cut's error that gives :meth:`refit_shares`, which ``bayes`` (``compensated``) reads instead of
    solving its prefixes again (:mod:`~bayesprune.surgery.residual`).
    Simplifications: each consumer is priced alone (its output error, not the loss's), and
    consumers the refit skips (grouped convolutions) are not priced; a group with no other
    consumer is refused.
    """

    name = "obs"
    description = "greedy removal of the channel the least-squares refit repairs best (OBS, per consumer)"
    source = "Hassibi & Stork 1993 (OBS saliency and update); Frantar & Alistarh 2022 (OBC, groups of weights)"
    needs_data = True

    def __init__(self, ridge: float = RIDGE, steps: int = 64, seed: int = 0):
        if steps < 1:
            raise ConfigError(f"obs: steps must be >= 1, got {steps}")
        self.ridge, self.steps, self.seed = ridge, steps, seed
        self.gathered: NamedStatistics | None = None
        self.shares: dict[str, np.ndarray] | None = None

    def prepare(self, model, graph, calibration) -> None:
        statistics = input_statistics(graph, calibration.batches(), "lsq", seed=self.seed)
        self.gathered = NamedStatistics.of(model, statistics, "lsq", self.seed)
        problems: dict[torch.nn.Module, RefitProblem] = {}  # per consumer, with a bias column in its weight
        self.scores, self.shares = [], {}
        for group in graph.groups:
            found: dict = {}  # consumer -> ([channel], [its columns there])
            for channel in range(group.size):
                for consumer in consumers_of(graph, {group.name: [channel]}):
                    module = consumer.module
                    if not refittable(module) or module not in statistics:
                        continue
                    if module not in problems:
                        problems[module] = _problem(module, statistics[module], self.ridge)
                    kernel = problems[module].kernel
                    channels, blocks = found.setdefault(module, ([], []))
                    channels.append(channel)
                    blocks.append((np.asarray(consumer.removed)[:, None] * kernel + np.arange(kernel)).ravel())
            if not found:
                raise ConfigError(f"obs prices a layer's channels by the refit of the layers that read them; "
                                  f"{group.name} has none it can refit (grouped convolutions only): use another "
                                  "criterion")
            consumers = {m: ConsumerProblem(np.asarray(channels), np.stack(blocks), problems[m].weight.copy(),
                                            problems[m].precision.copy())
                         for m, (channels, blocks) in found.items()}  # this group's copy of each problem
            zeroed = np.zeros((group.size, group.size))
            for module, consumer in consumers.items():
                zeroed[np.ix_(consumer.channels, consumer.channels)] += zeroed_matrix(
                    problems[module].weight, problems[module].gram, consumer.blocks)
            position, refit = greedy_refit_order(group.size, list(consumers.values()), self.steps)
            self.scores.append(torch.as_tensor(position, dtype=torch.float64))
            self.shares[group.name] = shares_of_prefixes(refit, zeroed, np.argsort(position, kind="stable"))
        self.graph = graph

    def group_scores(self, index: int) -> torch.Tensor:
        return self.scores[index]

    def input_statistics(self) -> NamedStatistics | None:
        """The ``lsq`` statistics :meth:`prepare` gathered: the engine's refit reads them, not the data."""
        return self.gathered

    def refit_shares(self) -> dict[str, np.ndarray] | None:
        """Per group name, the share ``r[k]`` of the zeroed cut's output error that the refit leaves
        when the first k channels of this criterion's order go (``r[0] = 1``; as
        :func:`~bayesprune.surgery.residual.compensated_share` defines it, exact at every k), for the
        network :meth:`input_statistics` names; None before :meth:`prepare`."""
        return self.shares


class ConsumerProblem(NamedTuple):
    """One consumer of a group in :func:`greedy_refit_order`."""

    channels: np.ndarray  # the group's channels it reads
    blocks: np.ndarray  # per one of those channels (a row), its columns in the consumer's weight
    weight: np.ndarray  # (out, columns + 1), the bias column last; updated in place
    precision: np.ndarray  # the inverse of its ridged Gram matrix; updated in place


def greedy_refit_order(size: int, consumers: list[ConsumerProblem],
                       steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The position at which each of ``size`` channels goes (0: first), and the refit's summed output
    error once the first k have gone, ``k = 0..size`` (exact after each update; linear inside a
    batch of ``steps``, whose channels go together). ``consumers``: :class:`ConsumerProblem` (or
    plain tuples in its field order); their ``weight`` and ``precision`` are updated in place.
    ``steps``: at most that many updates, removing the ``ceil(size / steps)`` cheapest channels
    together at each (the update costs ``cols^2`` per column removed; wide layers such as VGG's
    512 x 3 x 3 inputs need batches to be tractable); None: one channel per step, exact."""
    per_step = 1 if steps is None else max(1, -(-size // steps))
    scores = np.empty(size)
    available = np.ones(size, dtype=bool)
    position, error = 0, 0.0
    ends, errors = [0], [0.0]  # positions after each update and the error there
    while available.any():
        cost = np.where(available, 0.0, np.inf)
        for channels, blocks, weight, precision in consumers:
            live = available[channels]
            cost[channels[live]] += _prices(weight, precision, blocks[live])
        chosen = np.argsort(cost, kind="stable")[:min(per_step, int(available.sum()))]
        scores[chosen] = position + np.arange(len(chosen))
        available[chosen], position = False, position + len(chosen)
        for channels, blocks, weight, precision in consumers:
            b = blocks[np.isin(channels, chosen)].ravel()
            if len(b):
                # (P_BB)^-1 [P_B: | W_B^T]: the update, and the error of removing B jointly on the
                # updated problem (errors of successive removals add up: sequential least squares)
                solved = np.linalg.solve(precision[np.ix_(b, b)], np.concatenate([precision[b], weight[:, b].T], 1))
                solved, toward_weight = solved[:, :precision.shape[1]], solved[:, precision.shape[1]:]
                error += float(np.einsum("ob,bo->", weight[:, b], toward_weight))
                weight -= weight[:, b] @ solved
                precision -= precision[:, b] @ solved
        ends.append(position)
        errors.append(error)
    return scores, np.interp(np.arange(size + 1), ends, errors)


def _prices(weight: np.ndarray, precision: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Per row ``b`` of ``blocks``: ``tr(W_b (P_bb)^-1 W_b^T)``, the output error the refit cannot
    repair when those columns go (one batched solve)."""
    if len(blocks) == 0:
        return np.zeros(0)
    w = np.moveaxis(weight[:, blocks], 0, -1)  # (channels, columns, out)
    return np.einsum("nco,nco->n", w, np.linalg.solve(precision[blocks[:, :, None], blocks[:, None, :]], w))


def _problem(module, statistics, ridge: float) -> RefitProblem:
    """:func:`~bayesprune.surgery.residual.refit_problem` with a zero bias column appended to the
    weights (the refit moves the bias; the precision covers the intercept already)."""
    problem = refit_problem(module, statistics, ridge)
    return problem._replace(weight=np.concatenate([problem.weight, np.zeros((len(problem.weight), 1))], 1))
