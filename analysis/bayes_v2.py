"""Issue 16's evidence: the closed-form ``bayes`` against the frozen-network SVI ``bayes-svi``,
``l2``, ``taylor`` and Torch-Pruning's ``tp-l2``, ``tp-l1``, ``tp-group-sl``, at equal training
epochs and data, 50% and 20% of the MACs, 3 seeds; ablations of ``bayes`` at 50%; and pruning
without fine-tuning (``--epochs 0``, at most 2,000 training images as the calibration set, ``mean``
and ``lsq`` reparameterization for every bayesprune method; Torch-Pruning's pruner has none).

Set-up (``SETUP``): the shipped ResNet-20 on Fashion-MNIST, 16,000 training images, the full
10,000 test images, 3 geometric rounds of 2 fine-tuning epochs. Each cell is a
(regime, budget, seed, method) run by ``analysis/tp_compare.py``'s ``run_ours``/``run_theirs``
(method strings as there: ``bayes@uniform``, ``bayes+anneal_target=final``; bayes is always named
with its width check, and after fine-tuning with its annealing target, see :func:`spelled`). The result file is
rewritten after every cell, and a rerun only adds missing cells (``--only`` picks parts), so the
matrix can be measured over several sessions. ``headline`` per budget: the default ``bayes``, the
best other method and the margin in points; per method the mean and sd over seeds of
(method - reference) on the same seed, the reference being the default ``bayes`` (ablations: the
configuration they ablate).

The ``distill`` part fine-tunes every method of its table with distillation from the unpruned network
(``--distill 0.5``), Torch-Pruning's too, with its own ``headline_distill``.

With ``--epochs E`` the rounds fine-tune E epochs each instead of 2 (a longer budget than the issue's; its
own result file, e.g. ``results/bayes_v2_resnet20-fashion-mnist_epochs4.json``). With ``--distill-alpha A``
the distill part weighs the teacher's soft targets by A instead of 0.5 (its own result file too).

Usage: python analysis/bayes_v2.py [--only main|ablations|post|distill] [--targets 0.5] [--methods a,b]
       [--seeds 3] [--first-seed 0] [--epochs 4 --out F.json] [--distill-alpha 0.9 --out F.json] [--quick]
       python analysis/bayes_v2.py --merge A.json B.json [--replace] --out C.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from _common import commit, versions, write_json
# the row-naming rules; with_target is re-exported for callers of this script's names
from bayes_v2_names import (CHECKED, SETUP_REPARAMETERIZE, UNCHECKED, adapts, as_measured, default_bayes, default_post,
                            fine_tuned, spelled, spelled_out, with_target)  # noqa: F401
from tp_compare import ours_options, run_ours, run_theirs

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "bayes_v2_resnet20-fashion-mnist.json"
SETUP = {"model": "resnet20-fashion-mnist", "data": "fashion-mnist", "train_images": 16000, "test_images": 10000,
         "rounds": 3, "epochs": 2.0, "lr": 0.01, "batch_size": 128, "max_prune_fraction": 0.9,
         "calibration_batches": 8, "reparameterize": SETUP_REPARAMETERIZE, "svi_steps": 150, "chains": 2,
         "sl_epochs": 1}
# obs inside the layers, widths priced after the least-squares refit, least squares around every cut
OBS_LSQ = "+within=obs+option.compensated=True+reparameterize=lsq"
OBS_FINAL = f"{CHECKED}{OBS_LSQ}+anneal_target=final"
# ablations of OBS_FINAL: obs's uniform widths under its annealing; the posterior's own widths, unchecked; and its
# checked widths without annealing
UNIFORM_FINAL = f"bayes@uniform{OBS_LSQ}+anneal_target=final"
OWN_WIDTHS = f"{UNCHECKED}{OBS_LSQ}+anneal_target=final"
NO_ANNEALING = f"{CHECKED}{OBS_LSQ}+annealing=False"
MAIN = (f"{CHECKED}+anneal_target=current",  # the default when the width check came in
        f"{CHECKED}+reparameterize=lsq+anneal_target=current",  # least squares around every cut (the default)
        f"{CHECKED}+within=taylor+reparameterize=lsq+anneal_target=current",  # taylor inside the layers
        # widths priced after the least-squares refit (surgery/residual.py)
        f"{CHECKED}+option.compensated=True+reparameterize=lsq+anneal_target=current",
        f"{CHECKED}+option.cross_layer=True+anneal_target=current",  # checked widths, all layers priced together
        f"{UNCHECKED}+anneal_target=current",  # the default before the width check
        f"{UNCHECKED}+anneal_target=final",
        f"{UNCHECKED}+option.cross_layer=True+anneal_target=current",  # every layer's channels priced together
        f"{UNCHECKED}+anneal_target=last",  # current, then final in the last annealed round
        f"{UNCHECKED}+option.cross_layer=True+anneal_target=last",
        "bayes-svi", "l2", "l2+reparameterize=lsq", "taylor", "tp-l2", "tp-l1", "tp-group-sl",
        "obs+reparameterize=lsq", f"{CHECKED}+within=obs+reparameterize=lsq+anneal_target=current",
        f"{CHECKED}{OBS_LSQ}+anneal_target=current",
        # the default with the last annealed round dimming what the final cut removes
        f"{CHECKED}{OBS_LSQ}+anneal_target=last",
        # today's default: annealing every round toward the predicted final cut (checked since c95abd0)
        OBS_FINAL,
        f"{OBS_FINAL}+option.follow_prediction=True",  # each cut under the rule the final cut's check chose
        # obs's uniform widths with bayes's annealing toward the final cut (the distill part's ablation, stop 38)
        UNIFORM_FINAL,
        # the posterior's own widths, unchecked, with the same annealing (the distill part's ablation, stop 39)
        OWN_WIDTHS,
        NO_ANNEALING,  # the posterior's checked widths, no annealing (the distill part's ablation, stop 39)
        # one cosine over the run's fine-tuning (--lr-schedule run), for the default and for obs (stop 44)
        f"{OBS_FINAL}+option.follow_prediction=True+lr_schedule=run", "obs+reparameterize=lsq+lr_schedule=run",
        # fine-tuning at learning rate 0.05 (the distill part's rows: obs gains there, the default collapses; stop 44)
        "obs+reparameterize=lsq+lr=0.05", f"{OBS_FINAL}+option.follow_prediction=True+lr=0.05",
        f"{NO_ANNEALING}+lr=0.05")  # ... and the posterior's checked widths without annealing, which did not collapse
ABLATIONS = ("bayes@uniform+anneal_target=current",) + tuple(  # each ingredient, on bayes as it was measured
    f"{UNCHECKED}+{m}+anneal_target=current" for m in (
        "interactions=False", "within=taylor", "weight_norm_prior=False", "annealing=False",
        "prior=regularized-horseshoe", "prior=normal-jeffreys"))
POST = tuple(f"{m}+reparameterize={r}" for r in ("mean", "lsq")
             for m in (CHECKED, UNCHECKED, "bayes-svi", "l2", "taylor")) \
    + (f"{UNCHECKED}+option.cross_layer=True+reparameterize=lsq", "tp-l2", "tp-l1",
       f"{CHECKED}+within=taylor+reparameterize=lsq",  # checked widths, channels in taylor's order
       f"{CHECKED}+option.compensated=True+reparameterize=lsq",  # widths priced after the refit
       f"{UNCHECKED}+option.compensated=True+reparameterize=lsq",
       "obs+reparameterize=lsq",  # channels chosen by what the refit repairs (criteria/obs.py), uniform widths
       f"{CHECKED}+within=obs+reparameterize=lsq",  # the posterior's widths, obs's order inside them
       f"{CHECKED}{OBS_LSQ}",
       f"{CHECKED}{OBS_LSQ}+option.follow_prediction=True",
       # BatchNorm statistics re-estimated on the calibration images after each cut (--adapt-batchnorm, stop 41)
       f"{CHECKED}{OBS_LSQ}+option.follow_prediction=True+adapt_batchnorm=True",
       # ... and on a tie a later cut keeps the rule an earlier cut's check chose (keep_chosen_rule, stop 42)
       f"{CHECKED}{OBS_LSQ}+option.follow_prediction=True+adapt_batchnorm=True+option.keep_chosen_rule=True",
       # ... and without the tie rule: each check takes its held-out best (check_z=0, stop 42's default at epochs 0)
       f"{CHECKED}{OBS_LSQ}+option.follow_prediction=True+adapt_batchnorm=True+option.check_z=0",
       "obs+reparameterize=lsq+adapt_batchnorm=True", "l2+reparameterize=lsq+adapt_batchnorm=True",
       "tp-l2+adapt_batchnorm=True", "tp-l1+adapt_batchnorm=True",  # the peer adapted alike (stop 42)
       # one cut instead of three (the checks compare one-shot predictions of the final cut; stop 42)
       f"{CHECKED}{OBS_LSQ}+option.follow_prediction=True+adapt_batchnorm=True+option.check_z=0+rounds=1",
       "obs+reparameterize=lsq+adapt_batchnorm=True+rounds=1",
       # five cuts instead of three: does a more gradual path favour uniform widths further? (stop 43)
       f"{CHECKED}{OBS_LSQ}+option.follow_prediction=True+adapt_batchnorm=True+option.check_z=0+rounds=5",
       "obs+reparameterize=lsq+adapt_batchnorm=True+rounds=5")
# Fine-tuning with distillation from the unpruned network (``--distill``) for every method of the table,
# Torch-Pruning's included: the issue asks for a general fine-tuning aid in all rows or none. Its bayes
# (the reference of its paired differences and headline) is today's default (default_bayes: stop 36's,
# following the checked prediction); stop 35's (OBS_FINAL, not following) was measured first and stays.
DISTILL = (f"{OBS_FINAL}+option.follow_prediction=True", "obs+reparameterize=lsq", "l2+reparameterize=lsq", "l2",
           "taylor", "tp-group-sl", OBS_FINAL, "tp-l2", "tp-l1", "bayes-svi",
           # ablation: obs's uniform widths with bayes's annealing toward the predicted final cut (is the lead the
           # posterior's widths or fine-tuning at the final capacity from round 1? At 20% the latter; stop 38)
           UNIFORM_FINAL,
           # ablation: the posterior's own widths, unchecked (does the check's choice, scored right after each cut,
           # cost what fine-tuning with distillation could have made of the posterior's widths? stop 39)
           OWN_WIDTHS,
           # ablation: the default with nearly hard masks from round 1 (T_1 = 0.25: a keep probability of 0.8
           # gives a mask of 0.996): is the default's edge over uniform widths their softness or its widths?
           f"{OBS_FINAL}+option.follow_prediction=True+anneal_t0=0.25",
           # the posterior's widths without annealing: at 50% annealing toward the final cut cost uniform widths
           # 0.2 points and the posterior's widths gained 0.2 under it; do the two add up without it? (stop 39)
           NO_ANNEALING,
           # the default with its width check scoring each candidate after adaptive BatchNorm (Li et al. 2020): the
           # check scores before any fine-tuning, which re-estimates the norms first (stop 41)
           f"{OBS_FINAL}+option.follow_prediction=True+option.adapt_batchnorm=True",
           # one cosine over the run's fine-tuning instead of a restart per round (--lr-schedule run): annealing toward
           # the final cut fine-tunes one network from round 1, which restarts may only disturb; obs alike (stop 44)
           f"{OBS_FINAL}+option.follow_prediction=True+lr_schedule=run", "obs+reparameterize=lsq+lr_schedule=run",
           # ... and for the ablations of the default's widths: obs's uniform ones, the posterior's own unchecked
           f"{UNIFORM_FINAL}+lr_schedule=run", f"{OWN_WIDTHS}+lr_schedule=run", "l2+reparameterize=lsq+lr_schedule=run",
           # fine-tuning at half the base's learning rate (0.1) instead of a tenth: retraining at a large learning rate
           # recovers more than fine-tuning at a small one (Le & Hua 2021, ICLR, "Network pruning that matters")
           f"{OBS_FINAL}+option.follow_prediction=True+lr=0.05", "obs+reparameterize=lsq+lr=0.05",
           # at 0.05 the default collapsed (86.8% at 20%, seed 0): its checked widths without annealing, and obs's
           # uniform widths under its annealing: which ingredient fails at a large learning rate?
           f"{NO_ANNEALING}+lr=0.05", f"{UNIFORM_FINAL}+lr=0.05",
           f"{CHECKED}{OBS_LSQ}+anneal_target=current+lr=0.05")  # masks toward each round's own cut at 0.05
DISTILL_ALPHA = 0.5  # (1 - alpha) cross-entropy + alpha KL at the config's default temperature (4)
POST_TRAIN_IMAGES = 2000
QUICK_METHODS = ("bayes", "l2", "tp-l1", "bayes@uniform", "bayes+reparameterize=lsq")  # --quick's smoke rows
PARTS = {"main": ("fine-tune", (0.5, 0.2), MAIN), "ablations": ("fine-tune", (0.5,), ABLATIONS),
         "post": ("post-training", (0.5, 0.2), POST), "distill": ("fine-tune+distill", (0.5, 0.2), DISTILL)}


def settings_for(regime: str, setup: dict, target: float) -> dict:
    settings = {**setup, "train_subset": setup["train_images"], "test_subset": setup["test_images"],
                "target_macs": target}
    alpha = settings.pop("distill_alpha", DISTILL_ALPHA)  # a set-up key only where it is not the default
    if regime == "fine-tune+distill":
        settings["distill"] = alpha
    if regime == "post-training":
        settings.update(epochs=0.0, sl_epochs=0, train_subset=min(POST_TRAIN_IMAGES, setup["train_images"]))
    return settings


def post_training_config(method: str, target: float, seed: int, out: str, quick: bool = False):
    """The PruneConfig of ``method`` in the post-training set-up at ``target`` (``quick``: a tiny smoke
    run's data and 2 cuts), writing its run to ``out``: for scripts that run its cells one by one."""
    from bayesprune.config import PruneConfig

    name, options = ours_options(method, settings_for("post-training", SETUP, target))
    if quick:
        options.update(train_subset=1200, test_subset=500, calibration_batches=2, rounds=2)
    return PruneConfig(criterion=name, seed=seed, device="cpu", progress=False, report=False, out=out, **options)


def summarise(rows: list[dict]) -> dict:
    """Per regime and budget: each method's mean and sd over seeds, and its paired difference to its
    reference (:func:`_reference`)."""
    out: dict = {}
    for row in rows:
        out.setdefault(row["regime"], {}).setdefault(f"{row['target']:g}", {}).setdefault(row["method"], []).append(row)
    for budgets in out.values():
        for methods in budgets.values():
            rows_of = dict(methods)
            for method, runs in rows_of.items():
                reference = _reference(method, runs[0]["regime"])
                paired_with = {r["seed"]: r for r in rows_of.get(reference, [])} if reference != method else {}
                methods[method] = {**_stats(runs, paired_with), "reference": reference}
    return out


def _reference(method: str, regime: str) -> str:
    """The bayes row a method is paired with. Without fine-tuning: the default bayes with the same
    reparameterization (``mean``, the default, for Torch-Pruning's). After fine-tuning (with or without
    distillation): an ablation measured on bayes without the width check and with current annealing is
    paired with that configuration; everything else (that configuration too) with the default
    (:func:`default_bayes`)."""
    if regime == "post-training":  # the same reparameterization and BatchNorm adaptation
        _, _, reparameterize = method.partition("+reparameterize=")
        return default_post(reparameterize.split("+")[0] or "mean", adapts(method))
    unchecked = f"{UNCHECKED}+anneal_target=current"
    ablation = method.endswith("+anneal_target=current") and CHECKED not in method and method != unchecked
    return unchecked if ablation else default_bayes()


def _stats(runs: list[dict], reference: dict) -> dict:
    accuracy = [100 * r["accuracy"] for r in runs]
    after_cut = [100 * r["accuracy_after_final_cut"] for r in runs]
    paired = [100 * (r["accuracy"] - reference[r["seed"]]["accuracy"]) for r in runs if r["seed"] in reference]
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else None  # noqa: E731
    return {"accuracy_mean": statistics.mean(accuracy), "accuracy_sd": sd(accuracy),
            "accuracy_by_seed": {str(r["seed"]): a for r, a in zip(runs, accuracy)},
            "after_final_cut_mean": statistics.mean(after_cut), "seeds": sorted(r["seed"] for r in runs),
            "macs_ratio": statistics.mean(r["macs_ratio"] for r in runs), "epochs": runs[0]["epochs"],
            "seconds_mean": statistics.mean(r["seconds"] for r in runs),
            "minus_reference_mean": statistics.mean(paired) if paired else None,
            "minus_reference_sd": sd(paired)}


def headline(summary: dict, regime: str, candidates: tuple[str, ...]) -> dict:
    """Per budget: bayes against the best other method of ``candidates``, each pair compared over the
    seeds both have (methods may have more seeds than others): the margin is the mean of the paired
    differences, with their sd. After fine-tuning (with or without distillation) bayes is its default
    configuration (:func:`default_bayes`); without, the better of its two reparameterizations (every
    method is offered both); variants of bayes's options are never the headline's bayes, and no row that
    changes the set-up's number of cuts is in it. Another method's row fine-tuned at another learning rate
    (``+lr=``, ``+lr_schedule=``) is a candidate: each other method at its better measured schedule."""
    out = {}
    for budget, methods in summary.get(regime, {}).items():
        ours = [m for m in methods if m.split("+")[0] == "bayes" and m in candidates]
        if fine_tuned(regime):
            ours = [m for m in ours if m == default_bayes()]
        else:  # the default configuration under either reparameterization, not an option's variant
            ours = [m for m in ours if m in (default_post("mean"), default_post("lsq"))]
        # a row with another number of cuts than the set-up's (``+rounds=``) is measured beside the headline, not in it
        others = [m for m in methods if m.split("+")[0].split("@")[0] not in ("bayes",) and m in candidates
                  and "+rounds=" not in m]
        if not ours or not others:
            continue
        best_ours = max(ours, key=lambda m: methods[m]["accuracy_mean"])
        by_seed = methods[best_ours]["accuracy_by_seed"]
        pairs = {m: [(by_seed[s], a) for s, a in methods[m]["accuracy_by_seed"].items() if s in by_seed]
                 for m in others}
        pairs = {m: p for m, p in pairs.items() if p}
        if not pairs:
            continue
        best = max(pairs, key=lambda m: statistics.mean(a for _, a in pairs[m]))
        differences = [b - a for b, a in pairs[best]]
        out[budget] = {"bayes": statistics.mean(b for b, _ in pairs[best]), "bayes_method": best_ours,
                       "best_other": statistics.mean(a for _, a in pairs[best]), "best_other_name": best,
                       "margin_points": statistics.mean(differences),
                       "margin_sd": statistics.stdev(differences) if len(differences) > 1 else None,
                       "seeds": len(differences), "after_final_cut": methods[best_ours]["after_final_cut_mean"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="parts to run (default all)")
    parser.add_argument("--targets", help="comma-separated budgets (default: each part's)")
    parser.add_argument("--methods", help="comma-separated methods (default: each part's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="start at this seed (split seeds over processes)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (CI)")
    parser.add_argument("--epochs", type=float,
                        help=f"fine-tuning epochs per round instead of the set-up's {SETUP['epochs']:g} (a longer "
                             "budget: another set-up, so write to a new --out)")
    parser.add_argument("--distill-alpha", type=float,
                        help=f"the distill part's alpha instead of {DISTILL_ALPHA:g} (another set-up: write to a new "
                             "--out)")
    parser.add_argument("--merge", nargs="+", metavar="RESULT_JSON",
                        help="only join these result files (same set-up, e.g. budgets run in parallel processes "
                             "with OMP_NUM_THREADS=1) into --out; a cell may appear once")
    parser.add_argument("--replace", action="store_true",
                        help="with --merge: a cell in several files is taken from the last (re-measured after a "
                             "change), the replaced ones listed in the result")
    args = parser.parse_args()
    if args.merge:
        merge([Path(p) for p in args.merge], Path(args.out), args.replace)
        return
    setup = dict(SETUP, **({"epochs": args.epochs} if args.epochs is not None else {}),
                 **({"distill_alpha": args.distill_alpha} if args.distill_alpha is not None else {}))
    out = Path(args.out)
    if args.quick:
        setup.update(model="smallcnn-mnist5k", data="mnist5k", train_images=256, test_images=128, rounds=2,
                     epochs=0.1, svi_steps=5, sl_epochs=0)
        out = Path(tempfile.mkdtemp()) / "bayes_v2_quick.json"
        args.seeds, args.targets = 1, "0.5"
        args.methods = args.methods or ",".join(QUICK_METHODS)
    earlier = json.loads(out.read_text()) if out.exists() else None
    if earlier and earlier["setup"] != setup:
        raise SystemExit(f"{out} was measured with another set-up; write to a new --out")
    rows = [spelled_out(r) for r in earlier["rows"]] if earlier else []
    done = {(r["regime"], r["target"], r["seed"], r["method"]) for r in rows}
    code = commit()
    if args.methods and not args.quick:
        known = {m for _, _, listed in PARTS.values() for m in listed}
        unknown = [m for m in args.methods.split(",") if m not in known]
        if unknown:
            raise SystemExit(f"--methods: {', '.join(unknown)} not in any part's list; add it to the script")
    for part in args.only or sorted(PARTS):
        regime, targets, methods = PARTS[part]
        targets = [float(t) for t in args.targets.split(",")] if args.targets else targets
        methods = [m for m in args.methods.split(",") if m in methods or args.quick] if args.methods else methods
        for target in targets:
            for seed in range(args.first_seed, args.seeds):
                for method in methods:
                    method = spelled(method, regime)  # stored with its width check and annealing target
                    if (regime, target, seed, method) in done:
                        continue
                    settings = settings_for(regime, setup, target)
                    start = time.perf_counter()
                    row = run_theirs(method, settings, seed) if method.startswith("tp-") else run_ours(
                        as_measured(method), settings, seed)
                    rows.append({**row, "method": method, "regime": regime, "target": target,
                                 "seconds": time.perf_counter() - start,
                                 "commit": code, "torch_threads": torch.get_num_threads()})
                    done.add((regime, target, seed, method))
                    print(f"{regime} {target} seed {seed} {method}: {100 * row['accuracy']:.2f}% (after final cut "
                          f"{100 * row['accuracy_after_final_cut']:.2f}%), MACs {row['macs_ratio']:.3f}, "
                          f"{rows[-1]['seconds']:.0f} s", flush=True)
                    _write(out, setup, rows, earlier.get("replaced") if earlier else None)
    print(json.dumps(json.loads(out.read_text())["headline"], indent=1) if out.exists() else "no cells run")


def markdown(result: dict) -> str:
    """The README's tables: per regime and budget, every method's mean (sd) and its paired
    difference to bayes over the same seeds; then the headlines."""
    lines = []
    fine_tune = f"{result['setup']['rounds']} rounds of {result['setup']['epochs']:g} fine-tuning epochs"
    alpha = result["setup"].get("distill_alpha", DISTILL_ALPHA)
    names = {"fine-tune": fine_tune, "fine-tune+distill": f"{fine_tune}, distillation alpha {alpha:g}",
             "post-training": f"no fine-tuning, {POST_TRAIN_IMAGES} training images"}
    for regime, budgets in result["summary"].items():
        for budget, methods in budgets.items():
            lines += [f"{regime}, MACs target {budget} ({names[regime]}):", "",
                      "| method | accuracy | minus reference (paired) | right after the final cut | MACs ratio "
                      "| seeds |",
                      "|---|---|---|---|---|---|"]
            for method, v in sorted(methods.items(), key=lambda kv: -kv[1]["accuracy_mean"]):
                sd = f" ± {v['accuracy_sd']:.2f}" if v["accuracy_sd"] is not None else ""
                diff = ("–" if v["minus_reference_mean"] is None else f"{v['minus_reference_mean']:+.2f}"
                        + (f" ± {v['minus_reference_sd']:.2f}" if v["minus_reference_sd"] is not None else "")
                        + ("" if v["reference"] == default_bayes() else f" (vs `{v['reference']}`)"))
                lines.append(f"| `{method}` | {v['accuracy_mean']:.2f}{sd}% | {diff} | "
                             f"{v['after_final_cut_mean']:.2f}% "
                             f"| {v['macs_ratio']:.3f} | {len(v['seeds'])} |")
            lines.append("")
    for key, label in (("headline", "after fine-tuning"), ("headline_distill", "after fine-tuning with distillation"),
                       ("headline_post_training", "without fine-tuning")):
        for budget, h in result.get(key, {}).items():
            lines.append(f"Headline {label}, {budget}: `{h['bayes_method']}` {h['bayes']:.2f}%, best other "
                         f"`{h['best_other_name']}` {h['best_other']:.2f}%, margin {h['margin_points']:+.2f}"
                         + (f" ± {h['margin_sd']:.2f}" if h.get("margin_sd") is not None else "")
                         + f" points (paired, {h['seeds']} seeds).")
    return "\n".join(lines) + "\n"


def merge(paths: list[Path], out: Path, replace: bool = False) -> None:
    """Join result files into ``out``; a cell in more than one file is refused, or with ``replace``
    (cells re-measured after a change that moves them) taken from the last file that has it, and the
    replaced cells are listed in the result (``replaced``) with the commit they came from."""
    results = [json.loads(p.read_text()) for p in paths]
    if any(r["setup"] != results[0]["setup"] for r in results):
        raise SystemExit("--merge: the files were measured with different set-ups")
    rows = [spelled_out(row) for r in results for row in r["rows"]]
    key = lambda r: (r["regime"], r["target"], r["seed"], r["method"])  # noqa: E731
    counts = Counter(key(r) for r in rows)
    twice = sorted(c for c, n in counts.items() if n > 1)
    if twice and not replace:
        raise SystemExit(f"--merge: cells measured in more than one file: {twice} (--replace keeps the last file's)")
    latest = {key(r): i for i, r in enumerate(rows)}
    replaced = [{"cell": list(key(r)), "commit": r.get("commit"), "accuracy": r["accuracy"]}
                for i, r in enumerate(rows) if latest[key(r)] != i]
    replaced += [entry for r in results for entry in r.get("replaced", [])]  # earlier merges' record
    _write(out, results[0]["setup"], [r for i, r in enumerate(rows) if latest[key(r)] == i], replaced)
    print(f"merged {len(latest)} cells of {len(paths)} files into {out}"
          + (f"; {len(replaced)} replaced" if replaced else ""))


def _write(out: Path, setup: dict, rows: list[dict], replaced: list | None = None) -> None:
    summary = summarise(rows)
    distilled = headline(summary, "fine-tune+distill", DISTILL)
    result = {"script": "analysis/bayes_v2.py", "setup": setup, "device": "cpu",
              "label": "CPU (2 cores); ResNet-20 on Fashion-MNIST, 16k training images, full test set",
              "headline": headline(summary, "fine-tune", MAIN),
              "headline_post_training": headline(summary, "post-training", POST),
              **({"headline_distill": distilled} if distilled else {}),
              "summary": summary, "rows": rows, "row_commits": sorted({r["commit"] for r in rows if r.get("commit")}),
              **versions(), "torch_threads": sorted({r["torch_threads"] for r in rows}),
              **({"replaced": replaced} if replaced else {})}
    write_json(out, result)


if __name__ == "__main__":
    main()
