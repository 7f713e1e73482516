"""The iterative engine. Per round: score -> decide -> reparameterize -> cut -> fine-tune -> record.

Round r of R (targets from :meth:`bayesprune.decision.Budget.targets`):

1. the criterion scores the current network (for ``bayes``: the posterior, whose prior is the
   previous round's tempered posterior) and selects channels to reach round r's target, knowing
   the final target (``bayes`` also predicts which channels the final round will prune);
2. unless ``reparameterize="none"``, the criterion's per-channel multipliers (``bayes``: the
   gates' posterior means) are folded into the weights and the consumers of removed channels
   are compensated (:mod:`bayesprune.surgery.compensate`); the accuracy right after the cut is
   reported with and without this step;
3. the cut is physical (torch-pruning) and checked against the target by torch-pruning's counter;
4. fine-tuning; for a criterion that predicts, survivors carry annealed soft masks at temperature
   ``T_r`` (:mod:`bayesprune.annealing`; toward this round's cut by default, toward the final
   round's predicted cut with ``anneal_target="final"``) that are folded into the weights afterwards.

When the run ends, every round's predictions are scored (AUROC, Brier) against the final network.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .annealing import RoundAnnealing
from .batchnorm_adaptation import running_norms
from .checkpoint import checkpoint_payload, save_checkpoint
from .config import PruneConfig, environment
from .criteria import make_criterion
from .criteria.base import Calibration, Criterion
from .cut import Job, Network, SearchSettings, cut, finetune
from .data import load_dataset
from .decision.latency_feedback import feedback_verdict
from .decision.width_steps import WidthSteps
from .distillation import distillation_loss
from .distributed import SINGLE, Collective
from .errors import ConfigError, RunDirError, TrainingError
from .groups import ChannelGraph, check_prunable
from .plan import write_plan
from .plan.auto import evidence_budget, wants_evidence_budget
from .resume import STATE_FILE, RoundState, capture_rng, load_state, restore_rng
from .resume import save_state as save_round_state
from .runs import RUN_MARKER, RunDir
from .start import LATENCY_TABLE, WIDTH_STEPS, distillation_teacher, restored_network, start_network
from .tracking import ChannelTracker, score_predictions
from .training import FitConfig, resolve_device, seed_everything

SUMMARY_ROUND_KEYS = ("round", "accuracy", "accuracy_after_cut", "accuracy_after_cut_plain", "macs", "params",
                      "temperature", "prediction_auroc", "prediction_brier", "statistics_seconds", "decision_seconds",
                      "finetune_seconds", "seconds")


@dataclass
class Progress:
    """What the finished rounds left: their records, predictions and the channels still alive."""

    tracker: ChannelTracker
    rounds: list = field(default_factory=list)
    predictions: dict = field(default_factory=dict)
    next_round: int = 1


def run_pruning(config: PruneConfig, echo: Callable[[str], None] = lambda _s: None,
                state: RoundState | None = None, criterion: Criterion | None = None, allocation=None,
                collective: Collective = SINGLE) -> dict:
    """Run the whole job and return the summary (also written to ``summary.json`` if ``config.out``).

    ``criterion``: a criterion object to use instead of ``config.criterion`` and its options (your
    own :class:`~bayesprune.criteria.Criterion`, or e.g. ``BayesLaplace(prior=YourPrior())``); its
    ``name`` is recorded. ``allocation``: an allocation object instead of ``config.allocation``, with
    ``counts(cost_model, target, kind, cap, round_to, orders=..., scores=...)`` (see
    :mod:`bayesprune.decision.allocation`) and optionally ``for_round(graph, calibration)`` returning
    the object to use in a round (measured on that round's network). ``state``: continue a run from
    its saved state (see :mod:`bayesprune.resume`; a run made with your own objects resumes with the
    same objects passed again). ``collective``: the processes of a ``torchrun`` job
    (:func:`bayesprune.distributed.join`); every process calls this with the same arguments, only
    rank 0 prints and writes (see :mod:`bayesprune.distributed`)."""
    if not collective.is_main:
        echo, config = (lambda _s: None), replace(config, progress=False)
    plan = None
    if state is None and wants_evidence_budget(config):  # the budget comes from a plan of the base network
        config, plan = evidence_budget(config, echo, criterion)
    elif config.target_chosen_by and config.out and (Path(config.out) / "plan.json").is_file():
        plan = json.loads((Path(config.out) / "plan.json").read_text())
    job = replace(_prepare(config, criterion, allocation, collective), plan=plan)
    network = start_network(job, echo) if state is None else restored_network(job, state, echo)
    collective.broadcast_module(network.model)  # one network on every process, whatever its start drew
    if state is None:
        _preflight(job, network)  # a budget no sequence of capped cuts can reach fails before any write
        if config.epochs == 0 and job.criterion.own_widths and job.budget.allocation == "global" \
                and not (_measured_best_without_fine_tuning(job.criterion) and config.adapts_batchnorm):
            echo(NO_FINETUNE_WIDTHS)
        if anneals_above_measured_lr(config, job.criterion):
            echo(ANNEALING_LARGE_LR)
    teacher = distillation_teacher(job, network, state)  # before _progress restores the random state
    run_dir = _open_run_dir(job, network, state)
    progress = _progress(job, network, state, run_dir)
    loss_fn = distillation_loss(teacher, config.distill, config.distill_temperature) if teacher is not None else None
    if run_dir and state is None:
        _save_state(run_dir, job, network, progress)
    for r in range(progress.next_round, job.config.rounds + 1):
        record, prediction = _round(job, network, progress.tracker, r, loss_fn, run_dir, echo)
        if prediction is not None:
            progress.predictions[r] = prediction
        progress.rounds.append(record)
        if run_dir:
            _write_round(run_dir, job, network, record)
            progress.next_round = r + 1
            _save_state(run_dir, job, network, progress)
    summary = _summary(job, network, progress)
    if run_dir:
        _finish(run_dir, job, summary, echo)
    return summary


def _measured_best_without_fine_tuning(criterion) -> bool:
    """Whether ``criterion`` is already what :data:`NO_FINETUNE_WIDTHS` recommends."""
    within = getattr(criterion, "within", None)
    check = getattr(criterion, "width_check", None)
    return (getattr(within, "name", None) == "obs" and bool(getattr(criterion, "compensated", False))
            and bool(getattr(criterion, "follow_prediction", False)) and check is not None and check.z == 0)


NO_FINETUNE_WIDTHS = ("note: without fine-tuning (--epochs 0), bayes's defaults were measured best: obs inside the "
                      "layers, widths priced after the least-squares refit, every cut under the width rule the "
                      "checked prediction of the final cut chose, each check taking its held-out best (check_z=0) "
                      "and BatchNorm statistics re-estimated after each cut (ResNet-20, 3 cuts: 91.5% at 50% of the "
                      "MACs against 91.1% for l2, the best other method; at 20% 84.4% against 84.7% for obs, a tie "
                      "over 8 seeds; analysis/README.md); this run departs from them")

# the learning rate bayes's annealing was measured at, and what a larger one did (analysis/README.md, stop 44)
ANNEALING_MEASURED_LR = 0.01
ANNEALING_LARGE_LR = ("note: bayes's masks annealed toward the final cut were measured at --lr 0.01; at 0.05 "
                      "(ResNet-20, 20% of the MACs, distillation) the default fell to 86.8-88.7% where obs reached "
                      "91.5%, bayes --no-annealing 91.5% and --anneal-target current 91.6% (analysis/README.md); "
                      "consider one of those two with this learning rate")


def anneals_above_measured_lr(config: PruneConfig, criterion: Criterion) -> bool:
    """Whether the run fine-tunes a Bayesian criterion's masks (its own widths: bayes, bayes-svi) annealed toward
    the final cut at a learning rate above the one that annealing was measured at (toward each round's own cut,
    ``current``, it did not collapse at 0.05)."""
    return (config.epochs > 0 and config.rounds > 1 and config.annealing and config.anneal_target != "current"
            and criterion.own_widths and config.lr > ANNEALING_MEASURED_LR)


def _prepare(config: PruneConfig, criterion: Criterion | None, allocation=None,
             collective: Collective = SINGLE) -> Job:
    """Validate the config, resolve its names into objects, load the data."""
    named = None
    if allocation is not None:  # the config is validated as if uniform; the budget carries the object
        config = replace(config, allocation="uniform")
        named = getattr(allocation, "name", type(allocation).__name__)
    config.validate(criterion)
    if criterion is None:
        criterion = make_criterion(config.criterion, config=config)
    # config.json records what ran: the criterion's name and the allocation it resolved to
    budget = config.budget(criterion)
    if allocation is not None:
        budget = replace(budget, allocation=allocation)
    config = replace(config, criterion=criterion.name,
                     allocation=named or config.resolved_allocation(criterion))
    if collective.distributed and (budget.kind == "latency" or budget.round_to == "auto"):
        flag = "--target-latency" if budget.kind == "latency" else "--round-to auto"
        raise ConfigError(f"{flag} times the network in this process, and the processes of a torchrun "
                          "job would measure each other; run it in one process (without torchrun)")
    generator = seed_everything(config.seed)
    device = collective.device(resolve_device(config.device))
    data = load_dataset(config.data, config.data_dir).subset(config.train_subset, config.test_subset)
    criterion.check(data)
    return Job(config, criterion, budget, data, device, generator, data.test_x[:1].to(device),
               Calibration(data, device, config.batch_size, config.calibration_batches, config.seed, collective),
               FitConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size), collective=collective)


def _start_fraction(job: Job, network: Network) -> float:
    """The network before round 1 as a fraction of the base cost (above 1 after ``--expand``)."""
    kind = job.budget.kind
    return (network.expanded or network.base)[kind] / network.base[kind]


def _preflight(job: Job, network: Network) -> None:
    if job.config.adapt_batchnorm is True and not running_norms(network.model):  # asked for, not the default
        # a norm without running statistics normalises by each batch's own: there is nothing to re-estimate
        raise ConfigError("--adapt-batchnorm re-estimates BatchNorm statistics, but this model has no BatchNorm "
                          "layer with running statistics; drop the flag")
    check_prunable(network.model, job.inputs)
    cost_model = job.cost_model(ChannelGraph(network.model, job.inputs))
    job.budget.check_reachable(cost_model, network.base[job.budget.kind], _start_fraction(job, network))


def _open_run_dir(job: Job, network: Network, state: RoundState | None) -> RunDir | None:
    config = job.config
    if not config.out or not job.collective.is_main:  # one writer: rank 0
        return None
    run_dir = RunDir(config.out, config.overwrite, resume=state is not None)
    if state is None:
        run_dir.write_json("config.json", {"config": asdict(config), "model_source": network.source,
                                            "architecture": network.arch.to_dict(),
                                            "environment": {**environment(), "processes": job.collective.world_size}})
        run_dir.log_metrics({"event": "base", **network.base})
        if job.plan is not None:
            write_plan(job.plan, run_dir.path)
        if job.latency_table is not None:
            run_dir.write_json(LATENCY_TABLE, job.latency_table.to_dict())
        if isinstance(job.budget.round_to, WidthSteps):
            run_dir.write_json(WIDTH_STEPS, job.budget.round_to.to_dict())
        if network.expanded:
            run_dir.log_metrics({"event": "expanded", **network.expanded})
    return run_dir


def _progress(job: Job, network: Network, state: RoundState | None, run_dir: RunDir | None) -> Progress:
    tracker = ChannelTracker(ChannelGraph(network.model, job.inputs))
    if state is None:
        return Progress(tracker)
    tracker.alive = {name: np.asarray(alive, dtype=np.int64) for name, alive in state.alive.items()}
    job.criterion.load_state_dict(state.criterion)
    if run_dir:
        run_dir.restore_metrics(state.events)
    restore_rng(state.rng, job.generator)  # last: building the network drew random numbers
    return Progress(tracker, state.rounds, state.predictions, state.next_round)


def _save_state(run_dir: RunDir, job: Job, network: Network, progress: Progress) -> None:
    save_round_state(run_dir.path, RoundState(
        progress.next_round, checkpoint_payload(network.model, network.arch, network.history), run_dir.events(),
        {name: alive.tolist() for name, alive in progress.tracker.alive.items()}, progress.predictions,
        job.criterion.state_dict(), capture_rng(job.generator)))


def _round(job: Job, network: Network, tracker: ChannelTracker, r: int, loss_fn, run_dir, echo) -> tuple[dict, tuple]:
    """One round: cut to its target, fine-tune, measure; returns its record and its prediction."""
    config, budget = job.config, job.budget
    base_cost = network.base[budget.kind]
    start = _start_fraction(job, network)
    fraction = budget.targets(start)[r - 1]
    began = time.perf_counter()
    try:  # a diverging ELBO (cut) or a non-finite loss (fine-tune) stops the run here
        search = (SearchSettings(replace(job.fit, epochs=config.search_epochs), job.generator,
                                 start_trained=not (config.from_scratch and r == 1)) if job.criterion.trains else None)
        step = cut(job, network, budget.for_round(r, base_cost, start), tracker, search)
        decision_seconds = time.perf_counter() - began  # scoring (SVI for bayes-svi), decision, surgery
        after_cut = job.measure(network.model, step.latency)
        # the last round's survivors are the final network: no masks (its T is 0 and all keep)
        anneal = config.annealing and step.prediction is not None and r < config.rounds
        annealing = (RoundAnnealing.of_round(config.anneal_target, r, config.rounds, config.anneal_t0,
                                             config.anneal_alpha) if anneal else None)
        temperature = annealing.temperature if annealing else None
        fit_start = time.perf_counter()
        train_stats = finetune(job, network.model, tracker, step, annealing, loss_fn, job.fit_of_round(r),
                               desc=f"round {r} fine-tune")
    except TrainingError as exc:
        raise _stopped(exc, r, run_dir) from None
    finetune_seconds = time.perf_counter() - fit_start
    record = {"round": r, "target_fraction": fraction, "removed_channels": step.removed_channels,
              "accuracy_after_cut": after_cut["accuracy"], "accuracy_after_cut_plain": step.accuracy_after_cut_plain,
              "compensation": step.compensation, "batchnorm_adapted_on": step.batchnorm_images,
              "temperature": temperature, "widths": step.widths,
              "search": step.search, "lstm_rewards": step.lstm_rewards,
              "search_epochs": step.search["search_epochs"] if step.search else 0.0,
              "accuracy": job.accuracy(network.model),
              "macs": after_cut["macs"], "params": after_cut["params"], "train_loss": train_stats["loss"],
              "statistics_seconds": step.statistics_seconds, "decision_seconds": decision_seconds,
              "finetune_seconds": finetune_seconds, "seconds": time.perf_counter() - began}
    plain = record["accuracy_after_cut_plain"]
    echo(f"round {r}/{config.rounds}: target {fraction:.3f}, removed {record['removed_channels']} channels, "
         f"accuracy {record['accuracy_after_cut']:.4f} after cut"
         + (f" ({plain:.4f} without reparameterization)" if plain is not None else "")
         + f" -> {record['accuracy']:.4f} after fine-tune, {record['macs'] / 1e6:.2f} M MACs "
         f"({record['macs'] / network.base['macs']:.3f}), {record['seconds']:.1f} s")
    if "latency" in after_cut:  # the latency table's prediction, ms
        record["latency"] = after_cut["latency"]
    if step.latency_feedback is not None:
        record["latency_feedback"] = step.latency_feedback
        echo(_feedback_line(step.latency_feedback))
    record.update(job.criterion.round_record())
    if record.get("posterior_agreement"):
        echo(_agreement_line(record["posterior_agreement"]))
    return record, step.prediction


def _feedback_line(feedback: dict) -> str:
    """One line: the final cut's table targets and what the clock measured for each."""
    steps = "; ".join(f"table {p['table_fraction']:.3f} -> measured {p['measured_fraction']:.3f}"
                      for p in feedback["steps"])
    chosen = feedback["steps"][feedback["chosen"]]["table_fraction"]
    unreachable = feedback["unreachable_table_fraction"]
    again = (f", timed again {feedback['measured_fraction']:.3f}" if feedback.get("confirmed") else "")
    return (f"latency feedback (batch {feedback['batch']}, against the base): {steps}; kept table {chosen:.3f}"
            f"{again}, {feedback_verdict(feedback)} {feedback['wanted_fraction']:.3f}"
            + (f" (table target {unreachable:.3f} is out of reach under the caps)" if unreachable is not None else ""))


def _write_round(run_dir: RunDir, job: Job, network: Network, record: dict) -> None:
    record["files"] = job.criterion.write_artifacts(run_dir.path, record["round"])
    run_dir.log_metrics({"event": "round", **record})
    save_checkpoint(run_dir.file("model.pt"), network.model.cpu(), network.arch, network.history,
                    {"round": record["round"], "accuracy": record["accuracy"], "macs": record["macs"],
                     "params": record["params"], "data": job.config.data, "criterion": job.config.criterion})
    network.model.to(job.device)


def _summary(job: Job, network: Network, progress: Progress) -> dict:
    """The run's numbers; every round's predictions are scored against the final network here."""
    survivors = progress.tracker.survivors()
    rounds, base = progress.rounds, network.base
    for record in rounds:
        if record["round"] in progress.predictions:
            record.update(score_predictions(*progress.predictions[record["round"]], survivors))
    final = {k: rounds[-1][k] for k in ("accuracy", "macs", "params", "latency") if k in rounds[-1]}
    budget = {"kind": job.budget.kind, "fraction": job.budget.fraction,
              "chosen_by": job.config.target_chosen_by or "given"}
    feedback = rounds[-1].get("latency_feedback")
    if feedback is not None:  # the budget as the clock measured it (the table's prediction is final_ratio's)
        budget["measured_latency_fraction"], budget["measured_within_tolerance"] = (feedback["measured_fraction"],
                                                                                    feedback["met"])
    if job.plan is not None:
        evidence = job.plan["evidence"]
        budget["evidence"] = {**{k: evidence[k] for k in ("chosen_fraction", "log_evidence_change",
                                                          "removed_channels", "reduced_prior")},
                              "sentence": job.plan["sentence"], "plan": "plan.json"}
    return {"criterion": job.config.criterion, "budget": budget,
            "base": base, "expanded": network.expanded, "final": final,
            "final_ratio": {k: final[k] / base[k] for k in final if k != "accuracy"},
            "rounds": [{k: rec.get(k) for k in SUMMARY_ROUND_KEYS} for rec in rounds]}


def _finish(run_dir: RunDir, job: Job, summary: dict, echo) -> None:
    run_dir.write_json("summary.json", summary)
    if job.config.report:
        from .report import build_report

        build_report(run_dir.path)
        echo(f"report: {run_dir.path / 'report' / 'index.html'}")
    run_dir.file(STATE_FILE).unlink(missing_ok=True)  # finished: nothing left to resume


def resume_run(path: str | Path, echo: Callable[[str], None] = lambda _s: None, progress: bool = True,
               criterion: Criterion | None = None, allocation=None, collective: Collective = SINGLE) -> dict:
    """Continue the run in ``path`` from its last finished round; return its summary (every
    process of a ``torchrun`` job reads ``path``; see :func:`run_pruning`)."""
    path = Path(path)
    state = load_state(path)
    stored = json.loads((path / RUN_MARKER).read_text())["config"]
    known = {f.name for f in fields(PruneConfig)}
    if set(stored) - known:
        raise RunDirError(f"--resume {path}: its config.json has options this bayesprune does not know "
                          f"({', '.join(sorted(set(stored) - known))}); resume it with the version that started it")
    config = PruneConfig(**{**stored, "out": str(path), "overwrite": False, "progress": progress})
    return run_pruning(config, echo, state=state, criterion=criterion, allocation=allocation, collective=collective)


def _stopped(exc: TrainingError, r: int, run_dir: RunDir | None) -> TrainingError:
    """The one-line error of a round that could not finish; the run directory still holds the
    complete files of the last finished round (nothing of round r was written)."""
    kept = f"{run_dir.file('model.pt')} holds round {r - 1}'s network" if run_dir and r > 1 else "no round finished"
    return TrainingError(f"{exc}. The run stopped in round {r}; {kept}.")


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
