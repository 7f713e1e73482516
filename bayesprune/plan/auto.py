"""``--target-macs auto`` (or ``--target-params auto``): the run's budget is the one at which the
evidence of the reduced network stops improving (:mod:`bayesprune.plan.evidence`), from a plan of
the base network made with the run's own model, data and reparameterization."""
from __future__ import annotations

from dataclasses import replace

from ..config import DEFAULT_TARGET_MACS, PruneConfig
from ..runs import check_run_dir
from .planner import PlanConfig, make_plan

AUTO = "auto"
CHOSEN_BY = "evidence"


def wants_evidence_budget(config: PruneConfig) -> bool:
    return AUTO in (config.target_macs, config.target_params)


def evidence_budget(config: PruneConfig, echo=lambda _s: None, criterion=None) -> tuple[PruneConfig, dict]:
    """The config with its ``auto`` target replaced by the evidence's budget (and marked as chosen
    so), and the plan behind it. Every other option is checked before the plan's work."""
    kind = "params" if config.target_params == AUTO else "macs"
    placeholder = replace(config, **{f"target_{kind}": DEFAULT_TARGET_MACS})
    placeholder.validate(criterion)  # also refuses two budget flags at once
    if config.out:
        check_run_dir(config.out, config.overwrite)
    planned = replace(placeholder, out=None, criterion="bayes",
                      criterion_options=config.criterion_options if config.criterion == "bayes" else {})
    plan = make_plan(PlanConfig(planned, kind=kind), echo)
    fraction = plan["evidence"]["chosen_fraction"]
    echo(f"--target-{kind} {AUTO}: {plan['sentence']} Target: {fraction:.4f} of the base {kind}"
         + (" (the evidence keeps every channel: nothing will be cut)" if fraction >= 1.0 else "") + ".")
    return replace(config, **{f"target_{kind}": fraction}, target_chosen_by=CHOSEN_BY), plan
