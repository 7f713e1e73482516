"""One round's work on the network: the run's resolved objects (:class:`Job`, :class:`Network`),
the cut (search, score, decide, reparameterize, remove; :func:`cut`) and the fine-tuning with
annealed masks (:func:`finetune`). The engine (:mod:`bayesprune.rounds`) strings rounds together."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .annealing import RoundAnnealing, annealed_mask, tempered_mask
from .batchnorm_adaptation import adapt_batchnorm
from .config import PruneConfig
from .criteria.base import Calibration, Criterion
from .criteria.training_time import SearchContext
from .data import ImageData
from .decision import Budget, CostModel, ExpectedLossWidths, RoundBudget
from .decision.latency import LatencyCostModel, LatencyTable
from .decision.latency_feedback import LatencyFeedback
from .decision.allocation import as_allocation
from .decision.lstm import LSTMAllocation
from .distributed import SINGLE, Collective
from .gates import ChannelGates
from .groups import ChannelGraph, count_macs_params
from .nets import Architecture
from .pretrained import ResolvedModel
from .surgery import compensate, fold_gates
from .tracking import ChannelTracker
from .training import FitConfig, evaluate, fit, total_steps


@dataclass
class Job:
    """What a run works with, resolved once from its config: names are objects from here on."""

    config: PruneConfig
    criterion: Criterion
    budget: Budget
    data: ImageData
    device: torch.device
    generator: torch.Generator
    inputs: torch.Tensor  # one test image: the example input of graphs and counts
    calibration: Calibration
    fit: FitConfig
    plan: dict | None = None  # the plan behind a budget chosen by the evidence (--target-macs auto)
    latency_table: LatencyTable | None = None  # a --target-latency run's measured table
    latency_feedback: LatencyFeedback | None = None  # times its final cut against the base network
    collective: Collective = SINGLE  # the processes of a torchrun job (bayesprune.distributed)
    resolved_base: ResolvedModel | None = None  # a resumed run's model, resolved again once (bayesprune.start)

    def accuracy(self, net) -> float:
        """Test accuracy of ``net`` (shared among the processes)."""
        return evaluate(net, self.data.test_x, self.data.test_y, self.device, collective=self.collective)

    def measure(self, net, latency: float | None = None) -> dict:
        """Accuracy, MACs and params of ``net``; with a latency table also its predicted latency
        (``latency``: that prediction when the caller has it, e.g. a cut's :attr:`CutResult.latency`)."""
        macs, params = count_macs_params(net, self.inputs)
        measured = {"accuracy": self.accuracy(net), "macs": macs, "params": params}
        if self.latency_table is not None:  # predicted by the table (analysis/ measures it)
            measured["latency"] = (latency if latency is not None
                                   else self.cost_model(ChannelGraph(net, self.inputs)).full("latency"))
        return measured

    def fit_of_round(self, r: int) -> FitConfig:
        """Round ``r``'s fine-tuning: with ``--lr-schedule run`` its steps are its share of one cosine over
        every round's, else :attr:`fit` (a cosine of its own)."""
        if self.config.lr_schedule != "run":
            return self.fit
        steps = total_steps(self.fit, len(self.data.train_y))
        return replace(self.fit, cosine_window=((r - 1) * steps, self.config.rounds * steps))

    def cost_model(self, graph: ChannelGraph) -> CostModel:
        """The cost model of ``graph``: MACs and params, and latency when the budget is in latency."""
        if self.latency_table is None:
            return CostModel.build(graph)
        return LatencyCostModel.build(graph, self.latency_table)


@dataclass
class Network:
    """The network being pruned, its pruning history, and the numbers of the base (and widened) one."""

    model: nn.Module
    arch: Architecture
    history: list
    base: dict
    expanded: dict | None
    source: str | None = None


@dataclass
class SearchSettings:
    """The training a training-time criterion does before it selects (``--search-epochs``)."""

    fit: FitConfig
    generator: torch.Generator
    start_trained: bool = True  # False in round 1 of a --from-scratch run


@dataclass
class CutResult:
    """What one cut did (see :func:`_cut`)."""

    removed_channels: int
    statistics_seconds: float
    widths: dict  # group -> [channels before, after]
    search: dict | None = None  # a training-time method's search statistics
    lstm_rewards: list | None = None  # first and last episode's reward of --allocation lstm
    prediction: tuple | None = None  # (channel ids, P(pruned by the final round)) of a criterion that predicts
    keep_current: tuple | None = None  # (channel ids, P(kept at this round's budget))
    accuracy_after_cut_plain: float | None = None  # the same cut without reparameterization
    compensation: dict | None = None
    batchnorm_images: int | None = None  # images whose statistics the BatchNorm layers now hold (adaptation)
    latency: float | None = None  # the latency table's prediction for the cut network (latency budgets)
    latency_feedback: dict | None = None  # the final cut's targets and their measured latency (LatencyFeedback)


def allocation_for(job: Job, graph: ChannelGraph):
    """The round's allocation object (measured on this round's network for ``global`` and ``lstm``),
    or ``"global"`` for a criterion that decides the widths itself."""
    allocation, criterion = job.budget.allocation, job.criterion
    if not isinstance(allocation, str):  # the caller's own allocation object
        return allocation.for_round(graph, job.calibration) if hasattr(allocation, "for_round") else allocation
    if allocation == "global":
        return "global" if criterion.own_widths else ExpectedLossWidths.measure(graph.model, graph, job.calibration)
    if allocation == "lstm":
        return LSTMAllocation(graph, job.calibration.batches(), seed=job.config.seed, progress=job.config.progress)
    return as_allocation(allocation)


def cut(job: Job, network: Network, budget: RoundBudget, tracker: ChannelTracker,
         search: SearchSettings | None = None) -> CutResult:
    """(Search,) score, decide, reparameterize and cut once; verify the cut with torch-pruning's count.

    The cost model's prediction is an upper bound of that count (its constant terms can only
    shrink when channels go; see :mod:`bayesprune.decision.cost`), so one cut meets the target.
    """
    config, criterion, calibration, model = job.config, job.criterion, job.calibration, network.model
    graph = ChannelGraph(model, job.inputs)
    cost_model = job.cost_model(graph)
    budget.check_reachable(cost_model)  # before any costly scoring
    budget = replace(budget, allocation=allocation_for(job, graph))  # measured on this round's network
    prepare_start = time.perf_counter()
    search_stats = None
    if search is not None:  # a training-time method trains (and soft-prunes) before it selects
        search_stats = criterion.search(model, SearchContext(
            graph, cost_model, budget, calibration, search.fit, search.generator, config.progress,
            search.start_trained))
        search_stats["seconds"] = time.perf_counter() - prepare_start
    if criterion.needs_data:  # statistics over calibration data
        criterion.prepare(model, graph, calibration)
    statistics_seconds = time.perf_counter() - prepare_start
    feedback = None
    if job.latency_feedback is not None and budget.kind == "latency" and budget.target <= budget.final_target:
        # the final cut of a latency budget: its table target corrected until the clock agrees
        removal, budget, feedback = job.latency_feedback.meet(
            lambda b: criterion.select(graph, cost_model, b), lambda r: _cut_copy(model, job.inputs, r),
            budget, cost_model, job.budget.fraction)
    else:  # every process computed the same statistics; rank 0's decision is the one all apply
        removal = job.collective.broadcast(criterion.select(graph, cost_model, budget))
    step = CutResult(sum(len(v) for v in removal.values()), statistics_seconds,
                     {g.name: [g.size, g.size - len(removal.get(g.name, []))] for g in graph.groups}, search_stats,
                     latency_feedback=feedback)
    if isinstance(budget.allocation, LSTMAllocation):
        history = budget.allocation.history
        step.lstm_rewards = [history[0], history[-1]] if history else None
    prune_probability, keep = job.collective.broadcast((criterion.prune_probability(), criterion.keep_probability()))
    if prune_probability is not None:
        step.prediction = (tracker.ids(graph), np.asarray(prune_probability))
        step.keep_current = None if keep is None else (tracker.ids(graph), np.asarray(keep))
    if config.reparameterize != "none":
        plain = _cut_copy(model, job.inputs, removal)  # the same cut without reparameterization, for the report
        step.accuracy_after_cut_plain = job.accuracy(plain)
        del plain
        scales = job.collective.broadcast(criterion.reparameterization())
        if scales is not None:
            fold_gates(ChannelGates(graph), scales)
        gathered = criterion.input_statistics()  # scoring may have read them already (bayes's width check)
        statistics = None if gathered is None else gathered.for_model(model, config.reparameterize, config.seed)
        step.compensation = compensate(graph, removal, calibration.batches(), config.reparameterize,
                                       seed=config.seed, statistics=statistics)
    network.history.extend(graph.prune(removal))
    if config.adapts_batchnorm:  # the removed channels shifted every later norm's input
        step.batchnorm_images = adapt_batchnorm(model, calibration.batches())
    job.collective.broadcast_module(model)  # rank 0's folded and compensated weights on every process
    tracker.remove(removal)
    criterion.after_cut(removal)
    if budget.kind == "latency":  # the table's prediction: what the budget is stated in
        counted = step.latency = job.cost_model(ChannelGraph(model, job.inputs)).full("latency")
    else:
        counted = dict(zip(("macs", "params"), count_macs_params(model, job.inputs)))[budget.kind]
    if counted > budget.target * (1 + 1e-9):  # would mean the cost model missed a growing term: a bug, not user error
        raise RuntimeError(f"cut left {counted} {budget.kind}, above the target {budget.target:.0f}; "
                           "please report this model")
    return step


def _cut_copy(model: nn.Module, inputs: torch.Tensor, removal: dict) -> nn.Module:
    """A copy of ``model`` with ``removal`` cut out (``model`` is left as it is)."""
    cut_model = copy.deepcopy(model)
    ChannelGraph(cut_model, inputs).prune(removal)
    return cut_model


def finetune(job: Job, model, tracker: ChannelTracker, step: CutResult, annealing: RoundAnnealing | None, loss_fn,
             fit_config: FitConfig, desc: str) -> dict:
    """Fine-tune under ``fit_config``; with ``annealing``, survivors carry annealed masks that are folded in
    afterwards."""
    config = job.config
    graph = ChannelGraph(model, job.inputs) if annealing is not None and config.epochs > 0 else None
    masks = None if graph is None else anneal_masks(annealing, tracker, graph, step)
    if masks is None:
        return fit(model, job.data, fit_config, job.generator, job.device, config.progress, desc=desc,
                   loss_fn=loss_fn, collective=job.collective)
    gates = ChannelGates(graph)
    values = torch.as_tensor(masks, dtype=torch.float32)
    gates.values = values.to(job.device)
    try:
        with gates:
            stats = fit(model, job.data, fit_config, job.generator, job.device, config.progress, desc=desc,
                        loss_fn=loss_fn, collective=job.collective)
    finally:
        gates.values = None
    fold_gates(gates, values)
    return stats


def anneal_masks(annealing: RoundAnnealing, tracker, graph, step: CutResult) -> np.ndarray | None:
    """Survivors' soft masks of one round's ``annealing`` (:mod:`bayesprune.annealing`), or None."""
    if annealing.toward == "final":
        ids, prune_probability = step.prediction
        keep = dict(zip(ids, 1.0 - prune_probability))
        return annealed_mask(np.array([keep[cid] for cid in tracker.ids(graph)]), annealing.temperature)
    if step.keep_current is None:
        return None
    ids, keep_probability = step.keep_current
    keep = dict(zip(ids, keep_probability))
    return tempered_mask(np.array([keep[cid] for cid in tracker.ids(graph)]), annealing.temperature)
