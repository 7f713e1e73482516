"""The network a run starts from, before any cut: the resolved model (re-initialised with
``--from-scratch``, widened with ``--expand``) and its numbers, the measurements a budget needs first
(the latency table of ``--target-latency``, the width steps of ``--round-to auto``), or for a resumed
run the same read back from its directory; and the unpruned teacher of ``--distill``."""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .checkpoint import model_from_payload
from .cut import Job, Network
from .decision.latency import LatencyTable
from .decision.latency_feedback import LatencyFeedback
from .decision.width_steps import WidthSteps
from .errors import ModelError
from .groups import ChannelGraph
from .pretrained import ResolvedModel, resolve_model
from .resume import STATE_FILE, RoundState
from .surgery import widen

LATENCY_TABLE = "latency_table.json"  # in the run directory: read back on resume
WIDTH_STEPS = "width_steps.json"


def restored_network(job: Job, state: RoundState, echo) -> Network:
    """The network of a resumed run, with the latency table and width steps it started with."""
    config = job.config
    model, arch = model_from_payload(state.checkpoint, f"{config.out}/{STATE_FILE}")
    if job.budget.kind == "latency":  # the table the run was started with, not a new measurement
        job.latency_table = LatencyTable.from_dict(json.loads((Path(config.out) / LATENCY_TABLE).read_text()))
        if config.latency_feedback > 0:  # the base the budget is a fraction of, resolved again
            _time_against(job, _resolved_again(job).model)
    if job.budget.round_to == "auto":  # the same: the widths measured when the run started
        steps = WidthSteps.from_dict(json.loads((Path(config.out) / WIDTH_STEPS).read_text()))
        job.budget = replace(job.budget, round_to=steps)
    echo(f"resuming {config.out} at round {state.next_round} of {config.rounds}")
    return Network(model.to(job.device), arch, list(state.checkpoint["pruning_history"]), state.base, state.expanded)


def start_network(job: Job, echo) -> Network:
    """The network of round 1: the resolved model, widened with ``--expand``; and its numbers."""
    config, data = job.config, job.data
    resolved = resolve_model(config.model, data, config.weights, config.trust_pickle)
    model, arch = resolved.model.to(job.device), resolved.arch
    if job.budget.kind == "latency":  # (--expand is refused with it: the steps are measured on this model)
        steps = _measure_steps(job, model, echo) if job.budget.round_to == "auto" else None  # first: the
        echo(f"measuring the latency table (batch {config.latency_batch}, {config.latency_grid} widths per side"
             + (" and the step widths" if steps else "") + ")")  # table is then measured at the step widths
        job.latency_table = LatencyTable.measure(model, job.inputs, config.latency_batch, config.latency_grid,
                                                 progress=config.progress, steps=steps)
        if config.latency_feedback > 0:
            _time_against(job, model)
    base = job.measure(model)
    echo(f"{data.describe()}\nmodel {resolved.source}: accuracy {base['accuracy']:.4f}, "
         f"{base['macs'] / 1e6:.2f} M MACs, {base['params'] / 1e3:.1f} k params")
    history = list(resolved.pruning_history)
    if config.from_scratch:  # the architecture only: training-time methods train it from random weights
        if history:
            raise ModelError("--from-scratch needs an unpruned model; this one was pruned already")
        torch.manual_seed(config.seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        base = {**job.measure(model), "from_scratch": True}
        echo(f"--from-scratch: weights re-initialised (seed {config.seed}), accuracy {base['accuracy']:.4f}")
    expanded = None
    if config.expand > 1.0:
        if history:
            raise ModelError("--expand needs an unpruned model; this one was pruned already")
        model, arch = widen(model, arch, config.expand, config.expand_noise, config.seed)
        model.to(job.device)
        expanded = {"factor": config.expand, **job.measure(model)}
        echo(f"expanded x{config.expand} (Net2Wider): accuracy {expanded['accuracy']:.4f}, "
             f"{expanded['macs'] / 1e6:.2f} M MACs, {expanded['params'] / 1e3:.1f} k params")
    if job.budget.round_to == "auto":  # on the network round 1 cuts (after --expand)
        _measure_steps(job, model, echo)
    return Network(model, arch, history, base, expanded, resolved.source)


def _time_against(job: Job, base: nn.Module) -> None:
    """``--latency-feedback``: the final cut is timed against (a copy of) ``base``."""
    job.latency_feedback = LatencyFeedback(base.to(job.device), job.inputs, job.config.latency_batch,
                                           steps=job.config.latency_feedback)


def _measure_steps(job: Job, model: nn.Module, echo) -> WidthSteps:
    """``--round-to auto``: time every group's widths and put the steps into the budget."""
    config = job.config
    echo(f"measuring each layer's latency steps (batch {config.latency_batch}, every width)")
    steps = WidthSteps.measure(ChannelGraph(model, job.inputs), job.inputs, config.latency_batch,
                               progress=config.progress)
    job.budget = replace(job.budget, round_to=steps)
    return steps


def distillation_teacher(job: Job, network: Network, state: RoundState | None) -> nn.Module | None:
    """The unpruned network of round 1 for ``--distill``: a copy of it, or for a resumed run the
    model resolved and widened again exactly as :func:`start_network` did."""
    config = job.config
    if config.distill <= 0:
        return None
    if state is None:
        return copy.deepcopy(network.model)
    resolved = _resolved_again(job)
    model = resolved.model
    if config.expand > 1.0:
        model, _ = widen(model, resolved.arch, config.expand, config.expand_noise, config.seed)
    return model.to(job.device)


def _resolved_again(job: Job) -> ResolvedModel:
    """The run's model resolved again for a resumed run, once: the latency feedback copies it and
    ``--distill`` keeps it as the teacher (resolving loads and checks the file each time)."""
    if job.resolved_base is None:
        config = job.config
        job.resolved_base = resolve_model(config.model, job.data, config.weights, config.trust_pickle)
    return job.resolved_base
