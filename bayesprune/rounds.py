"""The iterative engine. Per round: score -> decide -> reparameterize -> cut -> fine-tune -> record.

Round r of R (targets from :func:`bayesprune.config.round_targets`):

1. the criterion scores the current network (for ``bayes``: the posterior, whose prior is the
   previous round's tempered posterior) and selects channels to reach round r's target, knowing
   the final target (``bayes`` also predicts which channels the final round will prune);
2. unless ``reparameterize="none"``, the criterion's per-channel multipliers (``bayes``: the
   gates' posterior means) are folded into the weights and the consumers of removed channels
   are compensated (:mod:`bayesprune.surgery.compensate`); the accuracy right after the cut is
   reported with and without this step;
3. the cut is physical (torch-pruning) and checked against the target by torch-pruning's counter;
4. fine-tuning; for a criterion that predicts, survivors carry annealed soft masks at temperature
   ``T_r`` (:mod:`bayesprune.annealing`; toward this round's cut by default, toward the
   final round's with ``anneal_target="final"``) that are folded into the weights afterwards.

When the run ends, every round's predictions are scored (AUROC, Brier) against the final network.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .annealing import annealed_mask, temperature_schedule, tempered_mask
from .gates import ChannelGates
from .tracking import ChannelTracker, score_predictions
from .checkpoint import checkpoint_payload, model_from_payload, save_checkpoint
from .config import PruneConfig, environment, round_targets
from .criteria import make_criterion
from .criteria.base import Calibration
from .criteria.training_time import SearchContext
from .distillation import distillation_loss
from .data import load_dataset
from .decision import CostModel, ExpectedLossWidths, check_reachable
from .decision.lstm import LSTMAllocation
from .errors import ModelError, RunDirError, TrainingError
from .groups import ChannelGraph, check_prunable, count_macs_params
from .pretrained import resolve_model
from .resume import STATE_FILE, RoundState, capture_rng, load_state, restore_rng
from .resume import save_state as save_round_state
from .runs import RUN_MARKER, RunDir
from .surgery import compensate, fold_gates, widen
from .training import FitConfig, evaluate, fit, resolve_device, seed_everything

SUMMARY_ROUND_KEYS = ("round", "accuracy", "accuracy_after_cut", "accuracy_after_cut_plain", "macs", "params",
                      "temperature", "prediction_auroc", "prediction_brier", "statistics_seconds", "decision_seconds",
                      "finetune_seconds", "seconds")


def run_pruning(config: PruneConfig, echo: Callable[[str], None] = lambda _s: None,
                state: RoundState | None = None) -> dict:
    """Run the whole job and return the summary (also written to ``summary.json`` if ``config.out``).

    ``state``: continue a run from its saved state (see :mod:`bayesprune.resume`)."""
    config.validate()
    config = replace(config, allocation=config.resolved_allocation())  # config.json records what ran
    budget = config.budget()
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    data = load_dataset(config.data, config.data_dir).subset(config.train_subset, config.test_subset)
    criterion = make_criterion(config.criterion, config.seed, **config.criterion_options())
    criterion.check(data)
    inputs = data.test_x[:1].to(device)
    fit_config = FitConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size)
    loss_fn = None  # cross-entropy, or distillation from the unpruned network (set below)

    def measure(net) -> dict:
        macs, params = count_macs_params(net, inputs)
        return {"accuracy": evaluate(net, data.test_x, data.test_y, device), "macs": macs, "params": params}

    if state is None:
        model, arch, history, base, expanded, source = _start(config, data, measure, echo, device)
        teacher = copy.deepcopy(model) if config.distill > 0 else None
    else:
        model, arch = model_from_payload(state.checkpoint, f"{config.out}/{STATE_FILE}")
        model.to(device)
        history, base, expanded = list(state.checkpoint["pruning_history"]), state.base, state.expanded
        source = None
        echo(f"resuming {config.out} at round {state.next_round} of {config.rounds}")
        teacher = _teacher(config, data, device) if config.distill > 0 else None
    start = expanded or base
    base_cost = base[budget.kind]
    targets = round_targets(budget.fraction, config.rounds, config.schedule, start[budget.kind] / base_cost)
    if state is None:  # pre-flight: a budget no sequence of capped cuts can reach fails before any write
        check_prunable(model, inputs)
        start_cost_model = CostModel.build(ChannelGraph(model, inputs))
        check_reachable(start_cost_model, targets[0] * base_cost, budget.kind, config.max_prune_fraction,
                        round_to=config.round_to)
        check_reachable(start_cost_model, targets[-1] * base_cost, budget.kind, config.max_prune_fraction,
                        config.rounds, config.round_to)
    run_dir = RunDir(config.out, config.overwrite, resume=state is not None) if config.out else None
    tracker = ChannelTracker(ChannelGraph(model, inputs))
    rounds, predictions, first = [], {}, 1
    if state is not None:
        rounds, predictions, first = state.rounds, state.predictions, state.next_round
        tracker.alive = {name: np.asarray(alive, dtype=np.int64) for name, alive in state.alive.items()}
        criterion.load_state_dict(state.criterion)
        run_dir.restore_metrics(state.events)
        restore_rng(state.rng, generator)  # last: building the network above drew random numbers
    elif run_dir:
        run_dir.write_json("config.json", {"config": asdict(config), "model_source": source,
                                            "architecture": arch.to_dict(), "environment": environment()})
        run_dir.log_metrics({"event": "base", **base})
        if expanded:
            run_dir.log_metrics({"event": "expanded", **expanded})

    def save_state(next_round: int) -> None:
        save_round_state(run_dir.path, RoundState(
            next_round, checkpoint_payload(model, arch, history), run_dir.events(),
            {name: alive.tolist() for name, alive in tracker.alive.items()}, predictions,
            criterion.state_dict(), capture_rng(generator)))

    if run_dir and state is None:
        save_state(1)
    if teacher is not None:
        loss_fn = distillation_loss(teacher, config.distill, config.distill_temperature)
    temperatures = temperature_schedule(config.rounds, config.anneal_t0, config.anneal_alpha)
    calibration = Calibration(data, device, config.batch_size, config.calibration_batches, config.seed)
    for r in range(first, config.rounds + 1):
        fraction = targets[r - 1]
        began = time.perf_counter()
        try:  # a diverging ELBO (cut) or a non-finite loss (fine-tune) stops the run here
            search = (SearchSettings(replace(fit_config, epochs=config.search_epochs), generator,
                                     start_trained=not (config.from_scratch and r == 1)) if criterion.trains else None)
            step = _cut(model, inputs, criterion, calibration, config, fraction * base_cost,
                        targets[-1] * base_cost, budget.kind, history, tracker, search)
            decision_seconds = time.perf_counter() - began  # scoring (SVI for bayes), decision, surgery
            after_cut = measure(model)
            # the last round's survivors are the final network: no masks (its T is 0 and all keep)
            anneal = config.annealing and "prediction" in step and r < config.rounds
            temperature = temperatures[r - 1] if anneal else None
            fit_start = time.perf_counter()
            train_stats = _finetune(model, inputs, data, fit_config, generator, device, config, tracker,
                                    step, temperature, loss_fn, desc=f"round {r} fine-tune")
        except TrainingError as exc:
            raise _stopped(exc, r, run_dir) from None
        finetune_seconds = time.perf_counter() - fit_start
        record = {"round": r, "target_fraction": fraction, "removed_channels": step["removed_channels"],
                  "accuracy_after_cut": after_cut["accuracy"],
                  "accuracy_after_cut_plain": step.get("accuracy_after_cut_plain"),
                  "compensation": step.get("compensation"), "temperature": temperature, "widths": step["widths"],
                  "search": step["search"], "lstm_rewards": step.get("lstm_rewards"),
                  "search_epochs": step["search"]["search_epochs"] if step["search"] else 0.0,
                  "accuracy": evaluate(model, data.test_x, data.test_y, device),
                  "macs": after_cut["macs"], "params": after_cut["params"], "train_loss": train_stats["loss"],
                  "statistics_seconds": step["statistics_seconds"], "decision_seconds": decision_seconds,
                  "finetune_seconds": finetune_seconds, "seconds": time.perf_counter() - began}
        if "prediction" in step:
            predictions[r] = step["prediction"]
        rounds.append(record)
        plain = record["accuracy_after_cut_plain"]
        echo(f"round {r}/{config.rounds}: target {fraction:.3f}, removed {record['removed_channels']} channels, "
             f"accuracy {record['accuracy_after_cut']:.4f} after cut"
             + (f" ({plain:.4f} without reparameterization)" if plain is not None else "")
             + f" -> {record['accuracy']:.4f} after fine-tune, {record['macs'] / 1e6:.2f} M MACs "
             f"({record['macs'] / base['macs']:.3f}), {record['seconds']:.1f} s")
        record.update(criterion.round_record())
        agreement = record.get("posterior_agreement")
        if agreement:
            echo(_agreement_line(agreement))
        if run_dir:
            record["files"] = criterion.write_artifacts(run_dir.path, r)
            run_dir.log_metrics({"event": "round", **record})
            save_checkpoint(run_dir.file("model.pt"), model.cpu(), arch, history,
                            {"round": r, "accuracy": record["accuracy"], "macs": record["macs"],
                             "params": record["params"], "data": config.data, "criterion": config.criterion})
            model.to(device)
            save_state(r + 1)
    survivors = tracker.survivors()
    for record in rounds:  # predictions of every round against the final network
        if record["round"] in predictions:
            record.update(score_predictions(*predictions[record["round"]], survivors))
    final = {k: rounds[-1][k] for k in ("accuracy", "macs", "params")}
    summary = {"criterion": config.criterion, "budget": {"kind": budget.kind, "fraction": budget.fraction},
               "base": base, "expanded": expanded, "final": final,
               "final_ratio": {"macs": final["macs"] / base["macs"], "params": final["params"] / base["params"]},
               "rounds": [{k: rec.get(k) for k in SUMMARY_ROUND_KEYS} for rec in rounds]}
    if run_dir:
        run_dir.write_json("summary.json", summary)
        if config.report:
            from .report import build_report

            build_report(run_dir.path)
            echo(f"report: {run_dir.path / 'report' / 'index.html'}")
        run_dir.file(STATE_FILE).unlink(missing_ok=True)  # finished: nothing left to resume
    return summary


def resume_run(path: str | Path, echo: Callable[[str], None] = lambda _s: None, progress: bool = True) -> dict:
    """Continue the run in ``path`` from its last finished round; return its summary."""
    path = Path(path)
    state = load_state(path)
    stored = json.loads((path / RUN_MARKER).read_text())["config"]
    known = {f.name for f in fields(PruneConfig)}
    if set(stored) - known:
        raise RunDirError(f"--resume {path}: its config.json has options this bayesprune does not know "
                          f"({', '.join(sorted(set(stored) - known))}); resume it with the version that started it")
    config = PruneConfig(**{**stored, "out": str(path), "overwrite": False, "progress": progress})
    return run_pruning(config, echo, state=state)


def _stopped(exc: TrainingError, r: int, run_dir: RunDir | None) -> TrainingError:
    """The one-line error of a round that could not finish; the run directory still holds the
    complete files of the last finished round (nothing of round r was written)."""
    kept = f"{run_dir.file('model.pt')} holds round {r - 1}'s network" if run_dir and r > 1 else "no round finished"
    return TrainingError(f"{exc}. The run stopped in round {r}; {kept}.")


def _start(config: PruneConfig, data, measure, echo, device):
    """The network of round 1: the resolved model, widened with ``--expand``; and its numbers."""
    resolved = resolve_model(config.model, data, config.weights, config.trust_pickle)
    model, arch = resolved.model.to(device), resolved.arch
    base = measure(model)
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
        base = {**measure(model), "from_scratch": True}
        echo(f"--from-scratch: weights re-initialised (seed {config.seed}), accuracy {base['accuracy']:.4f}")
    expanded = None
    if config.expand > 1.0:
        if history:
            raise ModelError("--expand needs an unpruned model; this one was pruned already")
        model, arch = widen(model, arch, config.expand, config.expand_noise, config.seed)
        model.to(device)
        expanded = {"factor": config.expand, **measure(model)}
        echo(f"expanded x{config.expand} (Net2Wider): accuracy {expanded['accuracy']:.4f}, "
             f"{expanded['macs'] / 1e6:.2f} M MACs, {expanded['params'] / 1e3:.1f} k params")
    return model, arch, history, base, expanded, resolved.source


def _teacher(config: PruneConfig, data, device):
    """The unpruned network of round 1 again (for a resumed run's distillation): resolved and
    widened exactly as :func:`_start` did."""
    resolved = resolve_model(config.model, data, config.weights, config.trust_pickle)
    model, arch = resolved.model, resolved.arch
    if config.expand > 1.0:
        model, arch = widen(model, arch, config.expand, config.expand_noise, config.seed)
    return model.to(device)


@dataclass
class SearchSettings:
    """The training a training-time criterion does before it selects (``--search-epochs``)."""

    fit: FitConfig
    generator: torch.Generator
    start_trained: bool = True  # False in round 1 of a --from-scratch run


def _allocation(config: PruneConfig, criterion, graph: ChannelGraph, calibration: Calibration):
    """The run's allocation: a name, or an object measured on this round's network (``global``
    for criteria that do not decide widths themselves; ``lstm``)."""
    if config.allocation == "global" and not criterion.own_widths:
        return ExpectedLossWidths.measure(graph.model, graph, calibration)
    if config.allocation != "lstm":
        return config.allocation
    return LSTMAllocation(graph, calibration.batches(), seed=config.seed, progress=config.progress)


def _cut(model, inputs, criterion, calibration, config, target, final_target, kind, history, tracker,
         search: SearchSettings | None = None) -> dict:
    """(Search,) score, decide, reparameterize and cut once; verify the cut with torch-pruning's count.

    The cost model's prediction is an upper bound of that count (its constant terms can only
    shrink when channels go; see :mod:`bayesprune.decision.cost`), so one cut meets the target.
    """
    graph = ChannelGraph(model, inputs)
    cost_model = CostModel.build(graph)
    check_reachable(cost_model, target, kind, config.max_prune_fraction,  # before any costly scoring
                    round_to=config.round_to)
    allocation = _allocation(config, criterion, graph, calibration)
    prepare_start = time.perf_counter()
    search_stats = None
    if search is not None:  # a training-time method trains (and soft-prunes) before it selects
        search_stats = criterion.search(model, SearchContext(
            graph, cost_model, target, final_target, kind, allocation, config.max_prune_fraction, config.round_to,
            calibration, search.fit, search.generator, config.progress, search.start_trained))
        search_stats["seconds"] = time.perf_counter() - prepare_start
    if criterion.needs_data:  # statistics over calibration data (SVI for bayes)
        criterion.prepare(model, graph, calibration)
    statistics_seconds = time.perf_counter() - prepare_start
    removal = criterion.select(graph, cost_model, target, kind, allocation,
                               config.max_prune_fraction, final_target=final_target, round_to=config.round_to)
    step = {"removed_channels": sum(len(v) for v in removal.values()), "statistics_seconds": statistics_seconds,
            "widths": {g.name: [g.size, g.size - len(removal.get(g.name, []))] for g in graph.groups},
            "search": search_stats}
    if isinstance(allocation, LSTMAllocation):
        step["lstm_rewards"] = [allocation.history[0], allocation.history[-1]] if allocation.history else None
    prune_probability = criterion.prune_probability()
    if prune_probability is not None:
        step["prediction"] = (tracker.ids(graph), np.asarray(prune_probability))
        keep = criterion.keep_probability()
        step["keep_current"] = None if keep is None else (tracker.ids(graph), np.asarray(keep))
    if config.reparameterize != "none":
        plain = copy.deepcopy(model)  # the same cut without reparameterization, for the report
        ChannelGraph(plain, inputs).prune(removal)
        step["accuracy_after_cut_plain"] = evaluate(plain, calibration.data.test_x, calibration.data.test_y,
                                                    calibration.device)
        del plain
        scales = criterion.reparameterization()
        if scales is not None:
            fold_gates(ChannelGates(graph), scales)
        step["compensation"] = compensate(graph, removal, calibration.batches(), config.reparameterize,
                                          seed=config.seed)
    history.extend(graph.prune(removal))
    tracker.remove(removal)
    criterion.after_cut(removal)
    macs, params = count_macs_params(model, inputs)
    counted = macs if kind == "macs" else params
    if counted > target:  # would mean the cost model missed a growing term: a bug, not user error
        raise RuntimeError(f"cut left {counted} {kind}, above the target {target:.0f}; please report this model")
    return step


def _finetune(model, inputs, data, fit_config, generator, device, config, tracker, step, temperature,
              loss_fn, desc: str) -> dict:
    """Fine-tune; with a temperature, survivors carry annealed masks that are folded in afterwards."""
    graph = ChannelGraph(model, inputs) if temperature is not None and config.epochs > 0 else None
    masks = None if graph is None else _anneal_masks(config, tracker, graph, step, temperature)
    if masks is None:
        return fit(model, data, fit_config, generator, device, config.progress, desc=desc, loss_fn=loss_fn)
    gates = ChannelGates(graph)
    values = torch.as_tensor(masks, dtype=torch.float32)
    gates.values = values.to(device)
    try:
        with gates:
            stats = fit(model, data, fit_config, generator, device, config.progress, desc=desc, loss_fn=loss_fn)
    finally:
        gates.values = None
    fold_gates(gates, values)
    return stats


def _anneal_masks(config, tracker, graph, step: dict, temperature: float) -> np.ndarray | None:
    """Survivors' soft masks at ``temperature`` (:mod:`bayesprune.annealing`), or None."""
    if config.anneal_target == "final":
        ids, prune_probability = step["prediction"]
        keep = dict(zip(ids, 1.0 - prune_probability))
        return annealed_mask(np.array([keep[cid] for cid in tracker.ids(graph)]), temperature)
    if step.get("keep_current") is None:
        return None
    ids, keep_probability = step["keep_current"]
    keep = dict(zip(ids, keep_probability))
    return tempered_mask(np.array([keep[cid] for cid in tracker.ids(graph)]), temperature)


def _agreement_line(agreement: dict) -> str:
    """One line on whether the round's posterior agrees with itself (see bayesprune.bayes.agreement)."""
    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    cross, halves = agreement["cross_fit"], agreement["split_half"]
    verdict = "agrees with itself" if agreement["passes"] else "DOES NOT agree with itself"
    return (f"  posterior {verdict}: R-hat max {fmt(agreement['r_hat_max'])}; cross-fit kept of p<0.05 "
            f"{fmt(cross['kept_of_low'])}, of p>0.95 {fmt(cross['kept_of_high'])}; data halves: kept of p<0.05 "
            f"{fmt(halves['kept_of_low'])}, of p>0.95 {fmt(halves['kept_of_high'])}, "
            f"Spearman {fmt(agreement['split_half_spearman'])}")
