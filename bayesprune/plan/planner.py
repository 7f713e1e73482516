"""``bayesprune plan``: how far can this network be pruned, before any cut.

Fits the closed-form posterior of ``bayes`` (:class:`~bayesprune.criteria.bayes_laplace.BayesLaplace`:
the same pass a round makes, on the same calibration images) once on the base network. For each
budget of a grid it takes every posterior draw's cut (and the decision, the cut a one-round ``run``
makes), applies it with the run's reparameterization and measures it on the last ``holdout``
training images, which the posterior does not read (:mod:`bayesprune.plan.curve`), paired with the
base network on the same images: the predicted loss right after the cut is the mean over the
evaluated draws. Its interval covers the posterior's uncertainty about *which* channels go
(``evaluated_draws`` draws) and the sampling error of the paired comparison
(:func:`~bayesprune.plan.curve.loss_interval`). The predicted accuracy is the base network's
accuracy minus that loss: its test accuracy when known (``base_accuracy``, or a shipped model's
card), else its held-out accuracy. Why the loss: held-out images seen in the base network's training
overstate an overfit network's accuracy (the small CNN: 99.95% there, 96.6% on its test set) and,
with cuts that cost little (``lsq``), that gap was most of the error; paired, it cancels to first
order, but not entirely: a cut first loses what the network fit to those images alone. So when the
base network records that it was trained on the first N training images only (``bayesprune train
--train-subset N``: ``ResolvedModel.train_images``), the held-out images are taken from the rest,
which it never saw, and the plan records and says whether its held-out images were seen
(``analysis/plan_calibration.py`` measures how often the interval holds the test accuracy, for
both kinds of base). When they were seen (or it is not recorded) and the base's accuracy on new
images is known, the interval takes a cut to disagree with the base on at least the share of new
images the base gets wrong (:func:`~bayesprune.plan.curve.discordance_floor`): the seen images
understate how much a cut moves. The test set is never read. The evidence of the nested reduced
networks along the posterior's removal order (:mod:`bayesprune.plan.evidence`) gives the budget the
data support.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import Bound, PruneConfig, environment
from ..criteria.base import Calibration
from ..criteria.bayes_laplace import BayesLaplace
from ..data import load_dataset
from ..data.base import ImageData
from ..decision import CostModel, RoundBudget
from ..decision.selector import BudgetedSelector
from ..errors import BudgetError, ConfigError, DataError
from ..groups import ChannelGraph, check_prunable, count_macs_params
from ..pretrained import resolve_model
from ..runs import check_run_dir
from ..training import correct_per_image, resolve_device, seed_everything
from .curve import BudgetCurve, BudgetPrediction, HeldOut, discordance_floor, evaluated_draws, loss_interval
from .evidence import EvidenceCurve, channel_log_evidence_change, evidence_curve
from ..masked_cuts import MaskedCuts

DEFAULT_HOLDOUT = 2000
DEFAULT_FRACTIONS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
REDUCED_PRIOR = ("the channel's effective scale z_c set to 0 (a spike at zero; Friston & Penny 2011, Gaussian "
                 "case; Savage-Dickey), scales (tau, lambda) integrated on the posterior's grid")


@dataclass(frozen=True)
class PlanConfig:
    """What a plan depends on. ``run``: the model, data, reparameterization and ``bayes`` options,
    as for ``bayesprune run`` (its criterion, rounds and fine-tuning are not used)."""

    run: PruneConfig = field(default_factory=PruneConfig)
    fractions: tuple = DEFAULT_FRACTIONS
    kind: str = "macs"
    evaluated_draws: int = 12
    holdout: int | None = None  # None: DEFAULT_HOLDOUT, or the training images the calibration leaves if fewer
    interval: float = 0.9
    loss_points: float = 1.0  # the accuracy loss the plan's sentence names
    # the base network's accuracy on the data it will be judged on (its test accuracy), the point
    # the predicted losses are taken from; None: a shipped model's card, else the held-out accuracy
    base_accuracy: float | None = None

    def validate(self) -> None:
        if self.kind not in ("macs", "params"):
            raise ConfigError(f"the budget kind must be macs or params, got {self.kind!r}")
        if not self.fractions:
            raise BudgetError("give at least one budget, e.g. --budgets 0.5")
        for fraction in self.fractions:
            Bound(0, 1, low_open=True).check("budgets", fraction)
        Bound(2).check("plan_draws", self.evaluated_draws)
        Bound(100, optional=True).check("holdout", self.holdout)
        Bound(0, 1, True, True).check("interval", self.interval)
        Bound(0, low_open=True).check("loss_points", self.loss_points)
        Bound(0, 1, optional=True).check("base_accuracy", self.base_accuracy)
        self.run.validate()
        if self.evaluated_draws > self.run.posterior_draws * self.run.chains:
            raise ConfigError(f"--plan-draws {self.evaluated_draws} is more than the posterior's "
                              f"{self.run.posterior_draws * self.run.chains} draws; lower it or raise "
                              "--posterior-draws")
        if self.run.out:  # before the work: a plan that cannot be written is not made
            check_run_dir(self.run.out, self.run.overwrite)


def held_out_split(data: ImageData, holdout: int | None, calibration_images: int, device,
                   base_train_images: int | None = None) -> HeldOut:
    """The last ``holdout`` training images. The posterior's statistics read the first
    ``calibration_images`` (and count all the training images as its data, as in a run), so the two
    must not overlap. When the base network was trained on the first ``base_train_images`` only,
    the default takes the held-out images from the rest, which it never saw."""
    train = len(data.train_y)
    if holdout is None:
        unseen = train - max(calibration_images, base_train_images or 0)
        holdout = min(DEFAULT_HOLDOUT, unseen if unseen >= 100 else train - calibration_images)
        if holdout < 100:
            raise DataError(f"{train} training images leave {max(0, holdout)} beside the {calibration_images} the "
                            "posterior reads; a plan measures cuts on at least 100: lower --calibration-batches")
    if train - holdout < calibration_images:
        raise DataError(f"--holdout {holdout} overlaps the {calibration_images} training images the posterior "
                        f"reads (of {train}); lower --holdout or --calibration-batches")
    seen = None if base_train_images is None else train - holdout < base_train_images
    return HeldOut(data.train_x[train - holdout:], data.train_y[train - holdout:], device, seen)


def describe_held_out(held_out: HeldOut, base_train_images: int | None) -> str:
    """Which images the cuts are measured on, and whether the base network saw them."""
    text = f"cuts are measured on the last {len(held_out)} training images"
    if held_out.seen_by_base is None:
        return text + " (whether the base network was trained on them is not recorded)"
    if not held_out.seen_by_base:
        return text + f", which the base network never saw (it was trained on the first {base_train_images})"
    return text + (f", which the base network was trained on (its first {base_train_images}): the predicted losses "
                   "are biased; leave images unseen with `bayesprune train --train-subset N`")


def make_plan(config: PlanConfig, echo=lambda _s: None) -> dict:
    """The plan as a dict (what ``plan.json`` holds)."""
    config.validate()
    run = replace(config.run, criterion="bayes")
    seed_everything(run.seed)
    device = resolve_device(run.device)
    data = load_dataset(run.data, run.data_dir).subset(run.train_subset, None)
    resolved = resolve_model(run.model, data, run.weights, run.trust_pickle)
    held_out = held_out_split(data, config.holdout, run.batch_size * run.calibration_batches, device,
                              resolved.train_images)
    model = resolved.model.to(device).eval()
    inputs = data.train_x[:1].to(device)  # the example input of graphs and counts
    check_prunable(model, inputs)
    base_correct = correct_per_image(model, held_out.x, held_out.y, device).numpy()  # the cuts are paired with it
    base_accuracy = float(base_correct.mean())
    macs, params = count_macs_params(model, inputs)
    echo(f"{data.describe()}; the posterior reads the first {run.batch_size * run.calibration_batches} training "
         f"images; {describe_held_out(held_out, resolved.train_images)}\nmodel {resolved.source}: "
         f"{100 * base_accuracy:.2f}% on the held-out images, {macs / 1e6:.2f} M MACs, {params / 1e3:.1f} k params")
    graph = ChannelGraph(model, inputs)
    cost_model = CostModel.build(graph)
    base_cost = cost_model.full(config.kind)
    calibration = Calibration(data, device, run.batch_size, run.calibration_batches, run.seed)
    # the curve scores the posterior's own cut at every budget: a run's held-out width check (which
    # may cut more conservatively, bayesprune.bayes.width_check) would select on images like these
    criterion = BayesLaplace.from_config(replace(run, criterion_options={**run.criterion_options,
                                                                         "check_widths": False}))
    criterion.prepare(model, graph, calibration)
    masked = MaskedCuts(model, inputs, calibration, run.reparameterize, criterion.reparameterization(), run.seed,
                        adapt_batchnorm=run.adapts_batchnorm)  # as the planned run's cuts leave the network
    names = [g.name for g in graph.groups]
    curve = BudgetCurve(criterion, cost_model, base_cost, config.kind, run.max_prune_fraction, masked, held_out,
                        names, config.interval, evaluated_draws(len(criterion.gate_draws), config.evaluated_draws),
                        base_correct).predict_all(sorted(set(config.fractions), reverse=True), run.progress)
    reference, reference_source, on_new_images = _reference_accuracy(config, base_accuracy, held_out.seen_by_base)
    floor = discordance_floor(held_out.seen_by_base, reference if on_new_images else None)
    evidence, change = _evidence(criterion, cost_model, config.kind, base_cost, run.max_prune_fraction)
    agreement = _agreement(criterion, graph, cost_model, config.kind, base_cost, evidence.chosen_fraction,
                           run.max_prune_fraction)
    plan = {"model": resolved.source, "data": data.describe(), "kind": config.kind, "interval": config.interval,
            "held_out_images": len(held_out), "held_out_seen_by_base": held_out.seen_by_base,
            "base_train_images": resolved.train_images, "posterior_images": run.batch_size * run.calibration_batches,
            "posterior_draws": int(len(criterion.gate_draws)), "evaluated_draws": config.evaluated_draws,
            "reparameterize": run.reparameterize,
            "base": {"held_out_accuracy": base_accuracy, "reference_accuracy": reference,
                     "reference": reference_source, "macs": macs, "params": params},
            "discordance_floor": floor,
            "budgets": [_budget_record(p, config.interval, len(held_out), run.seed, reference, floor) for p in curve],
            "evidence": _evidence_record(evidence, change, curve), "posterior_agreement": agreement,
            "config": {**asdict(config), "run": asdict(run)}, "environment": environment()}
    plan["sentence"] = sentence(plan, config.loss_points)
    return plan


def _evidence(criterion: BayesLaplace, cost_model, kind: str, base_cost: float,
              max_fraction: float) -> tuple[EvidenceCurve, np.ndarray]:
    """The evidence along the decision's removal order (the same at every budget; caps included),
    and each channel's own change."""
    change = channel_log_evidence_change(criterion.gsm)
    selector = BudgetedSelector(cost_model, criterion.group_of_channel, base_cost, kind, max_fraction)
    order = criterion.posterior_cuts(selector).removal_order
    return evidence_curve(order, change, cost_model, criterion.group_of_channel, kind, base_cost), change


def _agreement(criterion: BayesLaplace, graph, cost_model, kind: str, base_cost: float, fraction: float,
               max_fraction: float) -> dict | None:
    """Whether the posterior agrees with itself (chains, halves of the data) at the chosen budget
    (:mod:`bayesprune.bayes.agreement`); at 0.5 when the evidence keeps every channel."""
    target = (fraction if fraction < 1.0 else 0.5) * base_cost
    try:
        criterion.select(graph, cost_model, RoundBudget(target, target, kind, "global", max_fraction))
    except BudgetError:
        return None
    return criterion.agreement


def _reference_accuracy(config: PlanConfig, held_out_accuracy: float,
                        seen: bool | None) -> tuple[float, str, bool]:
    """The base accuracy the predicted losses are taken from, where it comes from, and whether it
    was measured on images the base never saw."""
    from ..pretrained import shipped_models

    if config.base_accuracy is not None:
        return config.base_accuracy, "given (--base-accuracy)", True
    card = shipped_models().get(config.run.model)
    if card is not None and card.get("test_accuracy") is not None:
        return float(card["test_accuracy"]), "the shipped model's test accuracy (its card)", True
    if seen is False:
        return held_out_accuracy, "the held-out training images, which the base network never saw", True
    return held_out_accuracy, ("the held-out training images (no --base-accuracy given; optimistic for a network "
                               "that fits its training images better than new ones)"), False


def _budget_record(prediction: BudgetPrediction, interval: float, images: int, seed: int, reference: float,
                   floor: float) -> dict:
    if not prediction.reachable:
        return {"fraction": prediction.fraction, "reachable": False}
    loss = np.asarray(prediction.draw_loss)
    low, high = loss_interval(loss, prediction.draw_discordance, images, interval, seed=seed, floor=floor)
    return {"fraction": prediction.fraction, "reachable": True, "decision_fraction": prediction.decision_fraction,
            "accuracy": {"mean": reference - float(loss.mean()), "low": reference - high, "high": reference - low,
                         "decision": reference - prediction.decision_loss},
            "loss": {"mean": float(loss.mean()), "low": low, "high": high, "decision": prediction.decision_loss},
            "draw_accuracy": [float(a) for a in prediction.draw_accuracy], "draw_loss": loss.tolist(),
            "draw_discordance": list(prediction.draw_discordance), "widths": prediction.widths}


def _evidence_record(evidence: EvidenceCurve, change: np.ndarray, curve: list[BudgetPrediction]) -> dict:
    return {"chosen_fraction": evidence.chosen_fraction, "removed_channels": evidence.best,
            "log_evidence_change": float(evidence.log_evidence_change[evidence.best]),
            "channels_with_positive_change": int((change > 0).sum()), "channels": int(len(change)),
            "reduced_prior": REDUCED_PRIOR,
            "at_budgets": {f"{p.fraction:g}": evidence.at(p.fraction) for p in curve},
            "curve": {"fractions": evidence.fractions.tolist(),
                      "log_evidence_change": evidence.log_evidence_change.tolist()}}


def sentence(plan: dict, loss_points: float) -> str:
    """The plain answer: what the evidence supports, and where the predicted loss passes ``loss_points``."""
    kind = "MACs" if plan["kind"] == "macs" else "params"
    removed = 100 * (1 - plan["evidence"]["chosen_fraction"])
    text = f"The data support removing about {removed:.0f}% of the {kind}"
    return text + _loss_clause(plan, loss_points, kind) + _trust(plan)


def _loss_clause(plan: dict, loss_points: float, kind: str) -> str:
    """Where the predicted loss right after the cut first exceeds ``loss_points``, along the budgets."""
    reachable = sorted((b for b in plan["budgets"] if b["reachable"]), key=lambda b: -b["fraction"])
    if not reachable:
        return "."
    over = [100 * b["loss"]["mean"] > loss_points for b in reachable]
    if not any(over):
        return (f"; down to {100 * reachable[-1]['fraction']:.0f}% of the {kind} the predicted loss right after "
                f"the cut stays within {loss_points:g} {_points(loss_points)}.")
    first = over.index(True)
    if first == 0:
        return (f"; even removing {100 * (1 - reachable[0]['fraction']):.0f}% loses more than {loss_points:g} "
                f"{_points(loss_points)} right after the cut (before fine-tuning).")
    return (f"; beyond {100 * (1 - reachable[first - 1]['fraction']):.0f}% the predicted loss right after the cut "
            f"exceeds {loss_points:g} {_points(loss_points)} (before fine-tuning).")


def _points(value: float) -> str:
    return "point" if value == 1 else "points"


def _trust(plan: dict) -> str:
    text = ""
    agreement = plan.get("posterior_agreement")
    if agreement is not None and not agreement.get("passes", True):
        what = "; ".join(agreement.get("failures") or [])
        text += (" The posterior does not agree with itself" + (f" ({what})" if what else "")
                 + ": treat these numbers as rough.")
    if plan.get("held_out_seen_by_base"):
        text += (" The cuts were measured on images the base network was trained on: the predicted losses are "
                 "biased (train it with --train-subset to leave some unseen)")
        floor = plan.get("discordance_floor") or 0.0
        text += (f"; the intervals take each cut to disagree with the base on at least {100 * floor:.1f}% of new "
                 "images, the base's error on them." if floor > 0 else ".")
    return text


def write_plan(plan: dict, folder: Path) -> list[str]:
    """``plan.json``, ``plan.md`` (the table and the sentence) and ``plan.png`` into ``folder``."""
    from ..runs import atomic_write_json, atomic_write_text
    from ..report.blocks import markdown_table
    from .render import plan_figure, plan_table, widths_rows

    percent = int(round(100 * plan["interval"]))
    atomic_write_json(folder / "plan.json", plan)
    atomic_write_text(folder / "plan.md", f"# Plan: {plan['model']}\n\n{plan_table(plan)}\n\n{plan['sentence']}\n\n"
                      f"## Surviving channels per layer: mean [{percent}% interval] over the posterior's draws\n\n"
                      f"{markdown_table(*widths_rows(plan))}\n")
    plan_figure(plan, folder / "plan.png")
    return ["plan.json", "plan.md", "plan.png"]

