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

from ..runs import atomic_write_text
from . import figures
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
    html_parts, md_parts = _overview(run, folder)
    if run.posteriors:
        more_html, more_md = _posterior_sections(run, folder)
        html_parts += more_html
        md_parts += more_md
    title = f"bayesprune report: {run.path.name}"
    page = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}"
            f"</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            + "\n".join(html_parts) + "\n</body>\n</html>\n")
    atomic_write_text(folder / "summary.md", f"# {title}\n\n" + "\n\n".join(md_parts) + "\n")
    atomic_write_text(folder / "index.html", page)
    return folder / "index.html"


def _overview(run: RunRecord, folder: Path) -> tuple[list[str], list[str]]:
    config = run.config["config"]
    final = run.rounds[-1]
    budget = (f"{config['target_params']} of the params" if config.get("target_params") is not None
              else f"{config.get('target_macs') or 0.5} of the MACs")
    facts = [("model", run.config.get("model_source", config.get("model"))), ("data", config.get("data")),
             ("criterion", config["criterion"]), ("budget", budget), ("rounds", config["rounds"]),
             ("seed", config["seed"]), ("status", "finished" if run.finished else
                                       f"interrupted after round {final['round']} of {config['rounds']}"),
             ("result", f"{100 * run.base['accuracy']:.2f}% -> {100 * final['accuracy']:.2f}% at "
                        f"{final['macs'] / run.base['macs']:.3f} of the MACs, "
                        f"{final['params'] / run.base['params']:.3f} of the params")]
    facts.insert(4, ("allocation", config.get("allocation", "uniform")))
    if any(record.get("search") for record in run.rounds):  # a training-time method (pfam, sep, search-train)
        facts.insert(5, ("search", f"{config['search_epochs']:g} epochs of training before each cut, then "
                                   f"{config['epochs']:g} of fine-tuning"
                                   + (" (from scratch: weights re-initialised)" if config.get("from_scratch") else "")
                                   + "; its time is in the statistics seconds"))
    rows = [_round_row(run, record) for record in run.rounds]
    accuracy_png = figures.accuracy_vs_macs(run, folder)
    facts_rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    html_parts = [f"<table class=\"facts\">{facts_rows}"
                  + "</table>", "<h2>Rounds</h2>", _html_table(ROUND_COLUMNS, rows),
                  "<p class=\"note\">AUROC/Brier: how well each round's predicted probability that a channel "
                  "is pruned by the end matches what the final network kept (bayes only; computed when "
                  "the run ends). Plain: the same cut without reparameterization.</p>",
                  _img(accuracy_png, "accuracy vs MACs")]
    md_parts = ["\n".join(f"- **{k}**: {v}" for k, v in facts), "## Rounds", markdown_table(ROUND_COLUMNS, rows),
                f"![accuracy vs MACs]({accuracy_png})"]
    if all("widths" in record for record in run.rounds):
        widths_png = figures.widths(run, folder)
        html_parts += ["<h3>Channels per layer</h3>", _img(widths_png, "channels per layer")]
        md_parts.append(f"![channels per layer]({widths_png})")
    return html_parts, md_parts


def _round_row(run: RunRecord, record: dict) -> list[str]:
    plain = record.get("accuracy_after_cut_plain")
    after_cut = _pct(record["accuracy_after_cut"]) + (f" ({_pct(plain)})" if plain is not None else "")
    return [str(record["round"]), f"{record['target_fraction']:.3f}", str(record["removed_channels"]), after_cut,
            _pct(record["accuracy"]), f"{record['macs'] / 1e6:.2f}", f"{record['macs'] / run.base['macs']:.3f}",
            f"{record['params'] / 1e3:.1f}", _num(record.get("statistics_seconds")),
            _num(record.get("finetune_seconds")), _num(record.get("seconds")),
            _num(record.get("prediction_auroc"), 3), _num(record.get("prediction_brier"), 3)]


def _posterior_sections(run: RunRecord, folder: Path) -> tuple[list[str], list[str]]:
    by_round = {record["round"]: record for record in run.rounds}
    histogram = figures.keep_histogram(run.posteriors, folder)
    html_parts = ["<h2>Keep probabilities</h2>",
                  "<p class=\"note\">A channel's keep probability is the share of posterior draws whose "
                  "budgeted decision keeps it; its 90% interval is the Monte-Carlo (Jeffreys) interval "
                  "of that share. Uncertain (red): the 90% HDI of its effect per cost contains the "
                  "round's cut level.</p>", _img(histogram, "histogram of keep probabilities")]
    md_parts = ["## Keep probabilities", f"![keep probability histogram]({histogram})"]
    idatas, traces = {}, {}
    for posterior in run.posteriors:
        record = by_round[posterior.round]
        idatas[posterior.round] = idata = posterior.inference_data()
        if "svi_trace" in idata.groups():
            traces[posterior.round] = idata.svi_trace["elbo"].values
        forest = figures.keep_forest(posterior, folder)
        survivors = figures.surviving(record, folder) if record.get("layers") else None
        uncertain = sorted((r for r in posterior.table if r["uncertain"] > 0),
                           key=lambda r: abs(r["keep_probability"] - 0.5))
        header = f"Round {posterior.round}: {len(uncertain)} uncertain of {len(posterior.table)} channels"
        listed = [[r["layer"], str(int(r["channel"])), f"{r['keep_probability']:.3f}",
                   f"[{r['keep_probability_low']:.3f}, {r['keep_probability_high']:.3f}]",
                   f"{r['prune_probability_final']:.3f}", "kept" if r["kept"] else "pruned"]
                  for r in uncertain[:UNCERTAIN_LISTED]]
        columns = ("layer", "channel", "keep probability", "90% interval", "P(pruned by the end)", "decision")
        more = (f"<p class=\"note\">{len(uncertain) - UNCERTAIN_LISTED} more in "
                f"keep_probability_round{posterior.round}.csv.</p>" if len(uncertain) > UNCERTAIN_LISTED else "")
        html_parts += [f"<h3>{header}</h3>", _img(forest, f"keep probabilities, round {posterior.round}")]
        if survivors:
            html_parts.append(_img(survivors, f"expected surviving channels, round {posterior.round}"))
        html_parts += ["<h4>Uncertain channels, closest to a coin flip first</h4>",
                       _html_table(columns, listed) if listed else "<p>none</p>", more]
        md_parts += [f"### {header}", f"![forest]({forest})"] + ([f"![survivors]({survivors})"] if survivors else [])
    agreement = [_agreement_row(record) for record in run.rounds if record.get("posterior_agreement")]
    if agreement:
        note = ("R-hat: largest split R-hat over tau and every layer's surviving count and RMS gate across the "
                "chains (should be <= 1.05). Cross-fit: of the channels one chain gives keep probability "
                "< 0.05, the share the other keeps (should be < 0.05), and of those > 0.95 (should be > 0.95). "
                "Data halves: the same for posteriors fitted on two disjoint halves of the calibration data, "
                "and the Spearman correlation of their mean cut priorities.")
        html_parts += ["<h2>Does the posterior agree with itself?</h2>", f"<p class=\"note\">{note}</p>",
                       _html_table(AGREEMENT_COLUMNS, agreement)]
        md_parts += ["## Does the posterior agree with itself?", note, markdown_table(AGREEMENT_COLUMNS, agreement)]
    if traces:
        elbo = figures.elbo_curves(traces, folder)
        html_parts += ["<h2>ELBO</h2>", _img(elbo, "ELBO curves")]
        md_parts += ["## ELBO", f"![ELBO]({elbo})"]
    html_parts.append("<h2>Convergence diagnostics (arviz)</h2>")
    md_parts.append("## Convergence diagnostics (arviz)")
    for round_index, idata in idatas.items():
        diagnostics = diagnose(idata)
        variables = [v for v in ("tau", "c2", "phi", "layer_rms_gate") if v in idata.posterior]
        trace = figures.trace_plot(idata, variables, round_index, folder)
        more_html, more_md = _diagnostics_section(round_index, diagnostics, trace)
        html_parts += more_html
        md_parts += more_md
    return html_parts, md_parts


AGREEMENT_COLUMNS = ("round", "R-hat max", "cross-fit: kept of p<0.05", "cross-fit: kept of p>0.95",
                     "halves: kept of p<0.05", "halves: kept of p>0.95", "halves: Spearman", "verdict")


def _agreement_row(record: dict) -> list[str]:
    a = record["posterior_agreement"]
    cross, halves = a["cross_fit"], a["split_half"]
    verdict = ("holds" if a["passes"] else "FAILS") + ("" if a["split_half_passes"] else "; data halves FAIL")
    return [str(record["round"]), _num(a["r_hat_max"], 3), _num(cross["kept_of_low"], 3),
            _num(cross["kept_of_high"], 3), _num(halves["kept_of_low"], 3), _num(halves["kept_of_high"], 3),
            _num(a["split_half_spearman"], 3), verdict]


def _diagnostics_section(round_index: int, d: Diagnostics, trace: str) -> tuple[list[str], list[str]]:
    if d.chains > 1 and d.max_r_hat is None:
        verdict = "every diagnosed quantity is constant over the draws"
    elif d.chains > 1:
        verdict = (f"largest R-hat {d.max_r_hat:.3f} across {d.chains} chains "
                   + ("(all below 1.01)" if d.max_r_hat < 1.01 else "(above 1.01: the chains disagree, so one "
                      "chain alone would be overconfident; pool more with --chains, or try more --svi-steps)"))
    else:
        verdict = "R-hat needs two or more chains; rerun with --chains 4 to get it"
    intro = (f"Round {round_index}: {d.inference}; {d.chains} chain(s) x {d.draws} draws; {verdict}.")
    columns = ("variable", "index", "mean", "sd", "ESS bulk", "ESS tail", "R-hat")
    rows = [[r["variable"], r["index"], f"{r['mean']:.4g}", f"{r['sd']:.3g}", f"{r['ess_bulk']:.0f}",
             f"{r['ess_tail']:.0f}", "n/a" if r["r_hat"] is None else f"{r['r_hat']:.3f}"] for r in d.rows]
    html_parts = [f"<h3>Round {round_index}</h3>", f"<p>{html.escape(intro)}</p>", _html_table(columns, rows)]
    if d.constant:
        html_parts.append("<p class=\"note\">Constant over all draws (no diagnostics): "
                          + html.escape(", ".join(d.constant)) + ".</p>")
    if d.fit_disagreement:
        disagreement = [[r["layer"], f"{r['max_difference']:.3f}", f"{r['mean_difference']:.3f}"]
                        for r in d.fit_disagreement]
        html_parts += ["<p>Largest and mean difference between chains' keep probabilities, per layer:</p>",
                       _html_table(("layer", "max difference", "mean difference"), disagreement)]
    html_parts.append(_img(trace, f"trace plot, round {round_index}"))
    worst = max(d.fit_disagreement, key=lambda r: r["max_difference"], default=None)
    md = [f"### Round {round_index}", intro]
    if worst:
        md.append(f"Largest disagreement between chains on a keep probability: {worst['max_difference']:.3f} "
                  f"({worst['layer']}).")
    md += [markdown_table(columns, rows), f"![trace]({trace})"]
    return html_parts, md


def _img(name: str, alt: str) -> str:
    return f"<p><img src=\"{html.escape(name)}\" alt=\"{html.escape(alt)}\"></p>"


def _html_table(columns, rows) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def markdown_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _num(value, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"
