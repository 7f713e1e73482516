"""``bayesprune report RUN_DIR``: ``report/index.html`` with its PNGs beside it, and ``report/summary.md``.

Sections: the rounds (table, accuracy vs MACs, channels per layer), and for a posterior
(``bayes``, ``bayes-svi``): keep probabilities (histogram, per-layer forest, expected survivors,
uncertain channels), whether the posterior agrees with itself, ELBO curves (SVI) and arviz
diagnostics. Point-estimate criteria get the first part only.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..decision.latency_feedback import feedback_verdict
from ..runs import atomic_write_text
from . import figures
from .blocks import Facts, Heading, Image, Table, Text, to_html, to_markdown
from .diagnostics import Diagnostics, diagnose
from .load import RunRecord, load_run

UNCERTAIN_LISTED = 40  # per round; the full list is in keep_probability_round<r>.csv

ROUND_COLUMNS = ("round", "target", "removed", "acc. after cut (plain)", "acc. after fine-tune", "MACs (M)",
                 "MACs ratio", "params (k)", "statistics s", "fine-tune s", "total s", "AUROC", "Brier")

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.facts td{text-align:left}.note{color:#555;font-size:0.9em}h2{border-bottom:1px solid #ddd;margin-top:2em}"""


def build_report(run_dir: str | Path) -> Path:
    """Write the report of the run in ``run_dir``; return the path of ``index.html``."""
    run = load_run(run_dir)
    folder = run.path / "report"
    folder.mkdir(exist_ok=True)
    blocks = (_overview(run, folder) + _plan_section(run, folder)
              + (_posterior_sections(run, folder) if run.posteriors else []))
    title = f"bayesprune report: {run.path.name}"
    page = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}"
            f"</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            + to_html(blocks) + "\n</body>\n</html>\n")
    atomic_write_text(folder / "summary.md", f"# {title}\n\n" + to_markdown(blocks) + "\n")
    atomic_write_text(folder / "index.html", page)
    return folder / "index.html"


def _overview(run: RunRecord, folder: Path) -> list:
    config = run.config["config"]
    final = run.rounds[-1]
    budget = (f"{float(config['target_params']):.4g} of the params" if config.get("target_params") is not None
              else f"{float(config['target_latency']):.4g} of the latency" if config.get("target_latency") is not None
              else f"{float(config.get('target_macs') or 0.5):.4g} of the MACs")
    if config.get("target_chosen_by") == "evidence":
        budget += " (chosen by the evidence: --target-macs auto)"
    facts = [("model", run.config.get("model_source", config.get("model"))), ("data", config.get("data")),
             ("criterion", config["criterion"]), ("budget", budget), ("rounds", config["rounds"]),
             ("seed", config["seed"]), ("status", "finished" if run.finished else
                                       f"interrupted after round {final['round']} of {config['rounds']}"),
             ("result", f"{100 * run.base['accuracy']:.2f}% -> {100 * final['accuracy']:.2f}% at "
                        f"{final['macs'] / run.base['macs']:.3f} of the MACs, "
                        f"{final['params'] / run.base['params']:.3f} of the params")]
    facts.insert(4, ("allocation", config.get("allocation", "uniform")))
    if "latency" in final and run.base.get("latency"):
        facts.append(("latency", _latency_fact(final, run.base["latency"])))
    if any(record.get("search") for record in run.rounds):  # a training-time method (pfam, sep, search-train)
        facts.insert(5, ("search", f"{config['search_epochs']:g} epochs of training before each cut, then "
                                   f"{config['epochs']:g} of fine-tuning"
                                   + (" (from scratch: weights re-initialised)" if config.get("from_scratch") else "")
                                   + "; its time is in the statistics seconds"))
    rows = tuple(tuple(_round_row(run, record)) for record in run.rounds)
    blocks = [Facts(tuple(facts)), Heading("Rounds"), Table(ROUND_COLUMNS, rows),
              Text("AUROC/Brier: how well each round's predicted probability that a channel is pruned by the end "
                   "matches what the final network kept (bayes only; computed when the run ends). Plain: the "
                   "same cut without reparameterization.", note=True),
              Image(figures.accuracy_vs_macs(run, folder), "accuracy vs MACs")]
    if all("widths" in record for record in run.rounds):
        blocks += [Heading("Channels per layer", 3), Image(figures.widths(run, folder), "channels per layer")]
    return blocks


def _latency_fact(final: dict, base_latency: float) -> str:
    """A latency budget's outcome: the table's prediction and, with the feedback, the clock's."""
    predicted = f"{final['latency'] / base_latency:.3f} of the base by the latency table"
    feedback = final.get("latency_feedback")
    if feedback is None:
        return predicted + " (the final cut was not timed: --latency-feedback 0)"
    return (f"{feedback['measured_fraction']:.3f} of the base measured against it (PyTorch, batch "
            f"{feedback['batch']}, {feedback['threads']} threads, {len(feedback['steps'])} cut(s) timed"
            + ("; the kept cut timed again, the figure here" if feedback.get("confirmed") else "")
            + f"), {feedback_verdict(feedback)}; {predicted}")


def _plan_section(run: RunRecord, folder: Path) -> list:
    """The plan behind a budget the evidence chose (``--target-macs auto``): its curve and sentence."""
    path = run.path / "plan.json"
    if not path.is_file():
        return []
    import json

    from ..plan.render import plan_figure, plan_rows, what_is_predicted

    plan = json.loads(path.read_text())
    plan_figure(plan, folder / "plan.png")
    columns, rows = plan_rows(plan)
    return [Heading("How far can this network be pruned? (plan of the base network, before any cut)"),
            Text(plan["sentence"]),
            Text(f"{what_is_predicted(plan)} The mean and "
                 f"{int(round(100 * plan['interval']))}% interval over {plan['evaluated_draws']} posterior draws' "
                 "cuts, and the decision's cut. The run's budget is where the evidence of the reduced network "
                 f"stops improving (Bayesian model reduction; reduced prior: {plan['evidence']['reduced_prior']}).",
                 note=True),
            Image("plan.png", "predicted accuracy against the budget"), Table(columns, tuple(rows))]


def _round_row(run: RunRecord, record: dict) -> list[str]:
    plain = record.get("accuracy_after_cut_plain")
    after_cut = _pct(record["accuracy_after_cut"]) + (f" ({_pct(plain)})" if plain is not None else "")
    return [str(record["round"]), f"{record['target_fraction']:.3f}", str(record["removed_channels"]), after_cut,
            _pct(record["accuracy"]), f"{record['macs'] / 1e6:.2f}", f"{record['macs'] / run.base['macs']:.3f}",
            f"{record['params'] / 1e3:.1f}", _num(record.get("statistics_seconds")),
            _num(record.get("finetune_seconds")), _num(record.get("seconds")),
            _num(record.get("prediction_auroc"), 3), _num(record.get("prediction_brier"), 3)]


def _posterior_sections(run: RunRecord, folder: Path) -> list:
    by_round = {record["round"]: record for record in run.rounds}
    blocks = [Heading("Keep probabilities"),
              Text("A channel's keep probability is the share of posterior draws whose budgeted decision keeps "
                   "it; its 90% interval is the Monte-Carlo (Jeffreys) interval of that share. Uncertain (red): "
                   "the 90% HDI of its effect per cost contains the round's cut level.", note=True),
              Image(figures.keep_histogram(run.posteriors, folder), "histogram of keep probabilities")]
    idatas, traces = {}, {}
    for posterior in run.posteriors:
        record = by_round[posterior.round]
        idatas[posterior.round] = idata = posterior.inference_data()
        if "svi_trace" in idata.groups():
            traces[posterior.round] = idata.svi_trace["elbo"].values
        uncertain = sorted((r for r in posterior.table if r["uncertain"] > 0),
                           key=lambda r: abs(r["keep_probability"] - 0.5))
        listed = tuple((r["layer"], str(int(r["channel"])), f"{r['keep_probability']:.3f}",
                        f"[{r['keep_probability_low']:.3f}, {r['keep_probability_high']:.3f}]",
                        f"{r['prune_probability_final']:.3f}", "kept" if r["kept"] else "pruned")
                       for r in uncertain[:UNCERTAIN_LISTED])
        blocks += [Heading(f"Round {posterior.round}: {len(uncertain)} uncertain of {len(posterior.table)} channels",
                           3),
                   Image(figures.keep_forest(posterior, folder), f"keep probabilities, round {posterior.round}")]
        if record.get("layers"):
            blocks.append(Image(figures.surviving(record, folder),
                                f"expected surviving channels, round {posterior.round}"))
        blocks += [Heading("Uncertain channels, closest to a coin flip first", 4), Table(UNCERTAIN_COLUMNS, listed)]
        if len(uncertain) > UNCERTAIN_LISTED:
            blocks.append(Text(f"{len(uncertain) - UNCERTAIN_LISTED} more in "
                               f"keep_probability_round{posterior.round}.csv.", note=True))
    agreement = tuple(tuple(_agreement_row(record)) for record in run.rounds if record.get("posterior_agreement"))
    if agreement:
        blocks += [Heading("Does the posterior agree with itself?"),
                   Text("R-hat: largest split R-hat over tau and every layer's surviving count and RMS gate across "
                        "the chains (should be <= 1.05). Cross-fit: of the channels one chain gives keep "
                        "probability < 0.05, the share the other keeps (should be < 0.05), and of those > 0.95 "
                        "(should be > 0.95). Data halves: the same for posteriors fitted on two disjoint halves of "
                        "the calibration data, and the Spearman correlation of their mean cut priorities.", note=True),
                   Table(AGREEMENT_COLUMNS, agreement)]
    checks = tuple(tuple(row) for record in run.rounds if record.get("width_check")
                   for row in _width_check_rows(record))
    if checks:
        blocks += [Heading("Were the posterior's widths kept?"),
                   Text("Each cut was also made at tighter caps and with uniform widths, and every candidate scored "
                        "as a masked, reparameterized network on held-out training images; the posterior's own cut "
                        "(run) stands unless another beats it by more than two paired standard errors "
                        "(bayesprune/bayes/width_check.py). A round before the last predicts the final cut "
                        "(P(pruned by the end), what --anneal-target final/last dims) with its cap compounded "
                        "over the cuts left: with final/last by the same held-out check among the final cut's "
                        "candidates, otherwise under this cut's chosen rule (the run's where that rule cannot "
                        "reach the final target). With follow_prediction (the default with final/last) the cut "
                        "itself is made under the rule the prediction's check chose, since the cuts compose.",
                        note=True),
                   Table(WIDTH_CHECK_COLUMNS, checks)]
    if traces:
        blocks += [Heading("ELBO"), Image(figures.elbo_curves(traces, folder), "ELBO curves")]
    blocks.append(Heading("Convergence diagnostics (arviz)"))
    for round_index, idata in idatas.items():
        variables = [v for v in (*_global_sites(run.config["config"]), "layer_rms_gate") if v in idata.posterior]
        trace = figures.trace_plot(idata, variables, round_index, folder)
        blocks += _diagnostics_section(round_index, diagnose(idata), trace)
    return blocks


UNCERTAIN_COLUMNS = ("layer", "channel", "keep probability", "90% interval", "P(pruned by the end)", "decision")


def _global_sites(config: dict) -> tuple[str, ...]:
    """The prior's own declaration of its global latent scales (``ScalePrior.global_sites``)."""
    from ..bayes.priors import PRIORS

    prior = PRIORS.get(config.get("prior"))
    sites = prior.global_sites if prior is not None else ("tau",)
    return (*sites, "phi") if config.get("per_layer_scale") else sites


AGREEMENT_COLUMNS = ("round", "R-hat max", "cross-fit: kept of p<0.05", "cross-fit: kept of p>0.95",
                     "halves: kept of p<0.05", "halves: kept of p>0.95", "halves: Spearman", "verdict")


WIDTH_CHECK_COLUMNS = ("round", "candidate", "held-out accuracy", "held-out log-likelihood (nats/image)", "chosen",
                       "predicts the final cut")


def _width_check_rows(record: dict) -> list[list[str]]:
    check = record["width_check"]
    own = check.get("chosen_for_cut", check["chosen"])  # differs where the cut followed the prediction

    def chosen(label: str) -> str:
        if label == check["chosen"]:
            return "yes" if own == label else "yes (the prediction's rule)"
        return "this cut's own best" if label == own else ""

    return [[str(record["round"]), label, _num(accuracy, 4), _num(log_likelihood, 4), chosen(label),
             "yes" if label == check.get("prediction_rule") else ""]
            for label, accuracy, log_likelihood in zip(check["candidates"], check["held_out_accuracy"],
                                                       check["held_out_log_likelihood"])]


def _agreement_row(record: dict) -> list[str]:
    a = record["posterior_agreement"]
    cross, halves = a["cross_fit"], a["split_half"]
    verdict = ("holds" if a["passes"] else "FAILS") + ("" if a["split_half_passes"] else "; data halves FAIL")
    return [str(record["round"]), _num(a["r_hat_max"], 3), _num(cross["kept_of_low"], 3),
            _num(cross["kept_of_high"], 3), _num(halves["kept_of_low"], 3), _num(halves["kept_of_high"], 3),
            _num(a["split_half_spearman"], 3), verdict]


def _diagnostics_section(round_index: int, d: Diagnostics, trace: str) -> list:
    if d.chains > 1 and d.max_r_hat is None:
        verdict = "every diagnosed quantity is constant over the draws"
    elif d.chains > 1:
        verdict = (f"largest R-hat {d.max_r_hat:.3f} across {d.chains} chains "
                   + ("(all below 1.01)" if d.max_r_hat < 1.01 else "(above 1.01: the chains disagree, so one "
                      "chain alone would be overconfident; pool more with --chains, or try more --svi-steps)"))
    else:
        verdict = "R-hat needs two or more chains; rerun with --chains 4 to get it"
    columns = ("variable", "index", "mean", "sd", "ESS bulk", "ESS tail", "R-hat")
    rows = tuple((r["variable"], r["index"], f"{r['mean']:.4g}", f"{r['sd']:.3g}", f"{r['ess_bulk']:.0f}",
                  f"{r['ess_tail']:.0f}", "n/a" if r["r_hat"] is None else f"{r['r_hat']:.3f}") for r in d.rows)
    blocks = [Heading(f"Round {round_index}", 3),
              Text(f"Round {round_index}: {d.inference}; {d.chains} chain(s) x {d.draws} draws; {verdict}."),
              Table(columns, rows)]
    if d.constant:
        blocks.append(Text("Constant over all draws (no diagnostics): " + ", ".join(d.constant) + ".", note=True))
    if d.fit_disagreement:
        disagreement = tuple((r["layer"], f"{r['max_difference']:.3f}", f"{r['mean_difference']:.3f}")
                             for r in d.fit_disagreement)
        blocks += [Text("Largest and mean difference between chains' keep probabilities, per layer:"),
                   Table(("layer", "max difference", "mean difference"), disagreement)]
    return blocks + [Image(trace, f"trace plot, round {round_index}")]


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _num(value, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"
