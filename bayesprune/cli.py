"""Command line: ``bayesprune run | compare | plan | train | evaluate | export | latency | report | criteria |
models``.

Every user mistake ends in one line on stderr naming the problem and the fix, and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import fields
from pathlib import Path

from .errors import BayesPruneError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        sys.stderr.write(f"bayesprune: error: {message}; see {self.prog} --help\n")
        raise SystemExit(EXIT_USAGE)


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="prune a network in rounds and write a run directory",
                       description="Prune a trained CNN to a MACs/params budget in iterative rounds.")
    _prune_options(p, compare=False)


def _compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="run several methods x budgets x seeds on one base model (resumable)",
                       description="Compare pruning methods under the same budget, rounds, fine-tuning and "
                                   "seeds; rerun the same command to resume.")
    _prune_options(p, compare=True)


def _model_options(p, defaults) -> None:
    """The network and its data, the same for run, compare and plan."""
    p.add_argument("--model", default=defaults.model,
                   help="shipped id (bayesprune models), architecture, checkpoint .pt, tv:NAME or pkg.mod:factory")
    p.add_argument("--weights", help="state dict for an architecture given by name (loaded weights_only)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load --model/--weights with full pickle (runs code in the file: only for files you made)")
    p.add_argument("--data", default=defaults.data, help="mnist5k | digits | fashion-mnist | cifar10 | imagefolder")
    p.add_argument("--data-dir", help="where the data set's files are (fashion-mnist, cifar10, imagefolder)")


def _prune_options(p, compare: bool) -> None:
    from .config import PruneConfig

    defaults = PruneConfig()
    _model_options(p, defaults)
    if compare:
        p.add_argument("--methods", required=True,
                       help="comma-separated criteria (bayesprune criteria) and Bayes variants, e.g. bayes,l1,bn-scale")
        p.add_argument("--target-macs", default="0.5", help="comma-separated MACs fractions, e.g. 0.5,0.3")
        p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per method and budget")
        p.add_argument("--backend", default="sequential",
                       help="sequential (default) | ray: every cell a Ray task (needs the [distributed] extra)")
        p.add_argument("--ray-address", help="a running Ray cluster (ray://HEAD:10001 or HEAD:6379); default: "
                                             "start a local Ray instance")
        p.add_argument("--cpus-per-cell", type=float, default=1.0, help="Ray resources of each cell")
        p.add_argument("--gpus-per-cell", type=float, default=0.0, help="Ray resources of each cell")
    else:
        p.add_argument("--criterion", "--method", dest="criterion", default=defaults.criterion,
                       help="scoring criterion or training-time method: pfam, sep, search-train (bayesprune criteria)")
        p.add_argument("--target-macs", type=str, default=None,
                       help="fraction of the base MACs to keep, in (0, 1] (default 0.5), or auto: the budget at which "
                            "the evidence stops improving (Bayesian model reduction; see bayesprune plan)")
        p.add_argument("--target-params", type=str, default=None,
                       help="fraction of the base params to keep instead (or auto)")
        p.add_argument("--target-latency", type=float, default=None,
                       help="fraction of the base network's latency on this machine (PyTorch, --latency-batch), "
                            "from a per-layer table measured at the start and written to latency_table.json")
        p.add_argument("--latency-batch", type=int, default=defaults.latency_batch)
        p.add_argument("--latency-grid", type=int, default=defaults.latency_grid,
                       help="widths per side of each layer's latency table")
    p.add_argument("--rounds", type=int, default=defaults.rounds)
    p.add_argument("--schedule", default=defaults.schedule, help="budget per round: geometric | linear")
    p.add_argument("--allocation", default=defaults.allocation,
                   help="uniform (per layer) | global | lstm (per-layer rates from an LSTM policy); "
                        "default: the criterion's own (bayes: widths from its posterior; others: uniform)")
    p.add_argument("--max-prune-fraction", type=float, default=defaults.max_prune_fraction,
                   help="most any one group may lose (default 0.9)")
    p.add_argument("--round-to", type=int, default=defaults.round_to,
                   help="keep a multiple of this many channels per layer (8 or 16 for real speed-ups on "
                        "CPU/GPU kernels; needs --allocation uniform)")
    p.add_argument("--epochs", type=float, default=defaults.epochs, help="fine-tune epochs per round")
    p.add_argument("--distill", type=float, default=defaults.distill, metavar="ALPHA",
                   help="fine-tune with (1 - ALPHA) cross-entropy + ALPHA distillation from the unpruned "
                        "network (Hinton et al. 2015); 0 (default) is off")
    p.add_argument("--distill-temperature", type=float, default=defaults.distill_temperature)
    t = p.add_argument_group("training-time methods (pfam, sep, search-train)")
    t.add_argument("--search-epochs", type=float, default=defaults.search_epochs,
                   help="epochs the method trains (and soft-prunes) before each round's cut")
    t.add_argument("--from-scratch", action="store_true",
                   help="re-initialise the model's weights first: train and prune from scratch")
    p.add_argument("--criterion-option", action="append", metavar="NAME=VALUE",
                   help="an option of the criterion beyond the flags here, e.g. samples=2048 for thinet "
                        "(repeatable; bayesprune criteria lists each criterion's options)")
    p.add_argument("--lr", type=float, default=defaults.lr, help="fine-tune learning rate")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--calibration-batches", type=int, default=defaults.calibration_batches,
                   help="training batches data-dependent criteria and compensation see")
    p.add_argument("--reparameterize", default=defaults.reparameterize,
                   help="around each cut: none | mean (fold posterior gate means, bias-compensate removed "
                        "channels) | lsq (fold, then least-squares refit of the next layers)")
    p.add_argument("--expand", type=float, default=defaults.expand,
                   help="widen the model by this factor first (Net2Wider), then prune to the same budget")
    p.add_argument("--expand-noise", type=float, default=defaults.expand_noise,
                   help="noise on the widened copies' filters, relative to the filters' sd")
    b = p.add_argument_group("bayes criteria (bayes; bayes-svi: the frozen-network SVI posterior)")
    b.add_argument("--prior", default=defaults.prior, help="horseshoe | regularized-horseshoe | normal-jeffreys")
    b.add_argument("--tau0", type=float, default=defaults.tau0,
                   help="scale of the global half-Cauchy (default 1 for bayes, 0.1 for bayes-svi)")
    b.add_argument("--within", default=defaults.within,
                   help="bayes: the criterion that orders channels inside a layer (default l2)")
    b.add_argument("--no-interactions", dest="interactions", action="store_false",
                   help="bayes: price a layer's cut with the diagonal of its Fisher block only, ignoring how "
                        "channels removed together interact (ablation)")
    b.add_argument("--no-weight-norm-prior", dest="weight_norm_prior", action="store_false",
                   help="bayes: put the prior on the gate alone, not on the weight-norm-scaled gate (ablation)")
    b.add_argument("--per-layer-scale", action="store_true", help="add a per-layer scale (hierarchical)")
    b.add_argument("--prior-option", action="append", metavar="NAME=VALUE",
                   help="any other option of the prior, e.g. slab_scale=1 for regularized-horseshoe (repeatable; "
                        "bayesprune criteria lists them)")
    b.add_argument("--svi-steps", type=int, default=defaults.svi_steps, help="bayes-svi")
    b.add_argument("--svi-lr", type=float, default=defaults.svi_lr, help="bayes-svi")
    b.add_argument("--posterior-draws", type=int, default=defaults.posterior_draws, help="draws per chain")
    b.add_argument("--chains", type=int, default=defaults.chains,
                   help="independent sets of posterior draws (bayes-svi: SVI fits or NUTS chains) from "
                        "different seeds, pooled; 2 or more give R-hat in the report (default 2)")
    b.add_argument("--inference", default=defaults.inference, help="svi | nuts (full-data NUTS, small models)")
    b.add_argument("--svi-train-weights", action="store_true",
                   help="update the network's weights (MAP) jointly with the gates during SVI")
    b.add_argument("--forgetting", type=float, default=defaults.forgetting,
                   help="rho in [0, 1]: the previous round's posterior^rho is the next prior (0: refit)")
    b.add_argument("--no-annealing", dest="annealing", action="store_false",
                   help="fine-tune without the annealed soft masks (ablation)")
    b.add_argument("--anneal-target", default=defaults.anneal_target,
                   help="final: survivors carry the Gibbs mask of p(kept by the final round), which dims "
                        "channels the posterior predicts later rounds prune (default) | current: p(kept this "
                        "round)^T, which does not dim them")
    b.add_argument("--anneal-t0", type=float, default=defaults.anneal_t0, help="temperature of round 1")
    b.add_argument("--anneal-alpha", type=float, default=defaults.anneal_alpha,
                   help="cooling factor per round, in (0, 1)")
    p.add_argument("--train-subset", type=int, help="use only the first N training images (quick runs)")
    p.add_argument("--test-subset", type=int, help="use only the first N test images")
    p.add_argument("--device", default=defaults.device, help="auto | cpu | cuda")
    if compare:
        p.add_argument("--out", required=True, help="comparison directory (rerun with the same --out to resume)")
    else:
        p.add_argument("--seed", type=int, default=defaults.seed)
        p.add_argument("--out", help="run directory (default: a new runs/run-YYYYmmdd-HHMMSS)")
        p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
        p.add_argument("--resume", metavar="RUN_DIR",
                       help="continue an interrupted run from its last finished round, with its own "
                            "config.json (other options are ignored)")
        p.add_argument("--no-report", dest="report", action="store_false",
                       help="do not write RUN_DIR/report at the end (`bayesprune report RUN_DIR` can later)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _plan_parser(sub) -> None:
    from .config import PruneConfig
    from .plan import DEFAULT_FRACTIONS, PlanConfig

    defaults, plan = PruneConfig(), PlanConfig()
    p = sub.add_parser("plan", help="before any cut: predicted accuracy at a grid of budgets, and the budget the "
                                    "evidence supports",
                       description="Fit the bayes posterior once on the base network and predict, for each budget, "
                                   "the accuracy right after the cut (mean and interval over posterior draws, on "
                                   "held-out training images) and the surviving channels per layer; report the "
                                   "budget at which Bayesian model reduction stops improving the evidence.")
    _model_options(p, defaults)
    p.add_argument("--budgets", default=",".join(f"{f:g}" for f in DEFAULT_FRACTIONS),
                   help="comma-separated fractions of the base MACs (or params) to keep")
    p.add_argument("--params", action="store_true", help="the budgets are fractions of the params, not the MACs")
    p.add_argument("--plan-draws", type=int, default=plan.evaluated_draws,
                   help="posterior draws whose cuts are evaluated per budget (the interval's resolution)")
    p.add_argument("--holdout", type=int, default=plan.holdout,
                   help="last N training images: never read by the posterior, every cut is measured on them "
                        "(default 2000, fewer if the calibration images leave fewer)")
    p.add_argument("--interval", type=float, default=plan.interval, help="central interval of the prediction")
    p.add_argument("--max-prune-fraction", type=float, default=defaults.max_prune_fraction)
    p.add_argument("--reparameterize", default=defaults.reparameterize, help="none | mean | lsq, as for run")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--calibration-batches", type=int, default=defaults.calibration_batches)
    p.add_argument("--prior", default=defaults.prior, help="horseshoe | regularized-horseshoe | normal-jeffreys")
    p.add_argument("--prior-option", action="append", metavar="NAME=VALUE")
    p.add_argument("--criterion-option", action="append", metavar="NAME=VALUE", help="an option of bayes")
    p.add_argument("--within", default=defaults.within)
    p.add_argument("--posterior-draws", type=int, default=defaults.posterior_draws)
    p.add_argument("--chains", type=int, default=defaults.chains)
    p.add_argument("--train-subset", type=int, help="use only the first N training images")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device, help="auto | cpu | cuda")
    p.add_argument("--out", help="plan directory (default: a new runs/plan-YYYYmmdd-HHMMSS)")
    p.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_plan(args) -> int:
    from .config import PruneConfig
    from .errors import BudgetError
    from .plan import PlanConfig, make_plan, write_plan
    from .plan.render import plan_table
    from .runs import RunDir

    names = {f.name for f in fields(PruneConfig)}
    values = {k: v for k, v in vars(args).items() if k in names} | _declared_options(args)
    values["out"] = args.out or _fresh_run_dir("plan")
    try:
        fractions = tuple(float(f) for f in args.budgets.split(","))
    except ValueError:
        raise BudgetError(f"--budgets must be comma-separated numbers in (0, 1], got {args.budgets!r}") from None
    config = PlanConfig(PruneConfig(**values, progress=not args.quiet), fractions, "params" if args.params else "macs",
                        args.plan_draws, args.holdout, args.interval)
    plan = make_plan(config, echo=print)  # validates everything, --out included, before any work
    out = config.run.out
    write_plan(plan, RunDir(out, config.run.overwrite).path)
    print(plan_table(plan))
    print(plan["sentence"])
    print(f"plan directory: {out} (plan.json, plan.md, plan.png)")
    return 0


def _cmd_run(args) -> int:
    from .config import PruneConfig
    from .rounds import run_pruning

    if args.resume:
        from .rounds import resume_run

        summary = resume_run(args.resume, echo=print, progress=not args.quiet)
        print(_table(summary))
        print(f"run directory: {args.resume}")
        return 0
    names = {f.name for f in fields(PruneConfig)}
    values = {k: v for k, v in vars(args).items() if k in names} | _declared_options(args)
    values |= {k: _target(values[k], "--" + k.replace("_", "-")) for k in ("target_macs", "target_params")}
    values["out"] = args.out or _fresh_run_dir()
    config = PruneConfig(**values, progress=not args.quiet)
    summary = run_pruning(config, echo=print)
    print(_table(summary))
    print(f"run directory: {config.out}")
    return 0


def _cmd_compare(args) -> int:
    from .compare import run_grid
    from .config import PruneConfig
    from .errors import BudgetError, ConfigError

    names = {f.name for f in fields(PruneConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and k not in ("target_macs", "out")}
    values |= _declared_options(args)
    try:
        targets = [float(t) for t in args.target_macs.split(",")]
    except ValueError:
        raise BudgetError(f"--target-macs must be comma-separated numbers, got {args.target_macs!r}") from None
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    run_grid(PruneConfig(**values), methods, targets, args.seeds, args.out, progress=not args.quiet,
             backend=_backend(args))
    print((Path(args.out) / "table.md").read_text())
    print(f"comparison directory: {args.out} (results.csv, table.md, pareto.png)")
    return 0


def _target(value: str | None, flag: str):
    """A budget flag's value: a number, ``auto`` or unset (config.json records a number)."""
    from .errors import BudgetError

    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise BudgetError(f"{flag} must be a number in (0, 1] or auto, got {value!r}") from None


def _backend(args):
    """``--backend`` as an object (resolved here, at the edge)."""
    from .backends import RayBackend, Sequential
    from .errors import ConfigError

    if args.backend == "sequential":
        if args.ray_address:
            raise ConfigError("--ray-address needs --backend ray")
        return Sequential()
    if args.backend == "ray":
        return RayBackend(args.ray_address, args.cpus_per_cell, args.gpus_per_cell)
    raise ConfigError(f"unknown --backend {args.backend!r}; choose sequential or ray")


def _declared_options(args) -> dict:
    """``--criterion-option``/``--prior-option`` NAME=VALUE pairs (checked against the class's
    constructor when the config is validated; see bayesprune.options)."""
    from .options import parse_assignments

    return {"criterion_options": parse_assignments(args.criterion_option, "--criterion-option"),
            "prior_options": parse_assignments(args.prior_option, "--prior-option")}


def _fresh_run_dir(kind: str = "run") -> str:
    """``runs/<kind>-<timestamp>``, with a numeric suffix if one started in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = Path("runs") / f"{kind}-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = Path("runs") / f"{kind}-{stamp}-{n}"
    return str(candidate)


def _table(summary: dict) -> str:
    def cell(value, width: int, fmt: str = ".4f") -> str:
        return f"{'-':>{width}}" if value is None else f"{value:{width}{fmt}}"

    base = summary["base"]
    lines = [f"{'round':>5} {'cut,plain':>9} {'cut':>8} {'accuracy':>8} {'MACs (M)':>9} {'params (k)':>10} "
             f"{'AUROC':>6} {'seconds':>8}",
             f"{'base':>5} {'':>9} {'':>8} {base['accuracy']:8.4f} {base['macs'] / 1e6:9.2f} "
             f"{base['params'] / 1e3:10.1f} {'':>6} {'':>8}"]
    if summary.get("expanded"):
        wide = summary["expanded"]
        lines.append(f"{'wide':>5} {'':>9} {'':>8} {wide['accuracy']:8.4f} {wide['macs'] / 1e6:9.2f} "
                     f"{wide['params'] / 1e3:10.1f} {'':>6} {'':>8}")
    for r in summary["rounds"]:
        lines.append(f"{r['round']:>5} {cell(r['accuracy_after_cut_plain'], 9)} {r['accuracy_after_cut']:8.4f} "
                     f"{r['accuracy']:8.4f} {r['macs'] / 1e6:9.2f} {r['params'] / 1e3:10.1f} "
                     f"{cell(r['prediction_auroc'], 6, '.3f')} {r['seconds']:8.1f}")
    return "\n".join(lines)


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a base network and write checkpoint + model card")
    p.add_argument("--model", required=True, help="architecture (bayesprune models)")
    p.add_argument("--data", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--out", required=True, help="checkpoint path, e.g. models/resnet20-fashion-mnist.pt")
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")


def _cmd_train(args) -> int:
    from .train_base import TrainConfig, train_base

    config = TrainConfig(model=args.model, data=args.data, out=args.out, data_dir=args.data_dir,
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         device=args.device, progress=not args.quiet)
    train_base(config, echo=print)
    return 0


def _evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="test accuracy, MACs and params of a checkpoint (e.g. RUN/model.pt)")
    p.add_argument("model", help="checkpoint .pt or shipped id")
    p.add_argument("--trust-pickle", action="store_true", help="load the file with full pickle (trusted files only)")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--data-dir")
    p.add_argument("--device", default="auto")


def _cmd_evaluate(args) -> int:
    from .data import load_dataset
    from .groups import count_macs_params
    from .pretrained import resolve_model
    from .training import evaluate, resolve_device

    device = resolve_device(args.device)
    data = load_dataset(args.data, args.data_dir)
    resolved = resolve_model(args.model, data, trust_pickle=args.trust_pickle)
    macs, params = count_macs_params(resolved.model, data.test_x[:1])
    accuracy = evaluate(resolved.model, data.test_x, data.test_y, device)
    print(json.dumps({"model": resolved.source, "data": data.name, "accuracy": accuracy, "macs": macs,
                      "params": params}))
    return 0


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="write a pruned checkpoint as a plain ONNX or TorchScript file with a card",
                       description="Export a bayesprune checkpoint (e.g. RUN_DIR/model.pt) to a model file that runs "
                                   "without bayesprune, check it against PyTorch on test images and write a card "
                                   "(input shape and normalisation, classes, accuracy, MACs, params, base model).")
    p.add_argument("model", help="checkpoint .pt (e.g. RUN_DIR/model.pt) or shipped id")
    p.add_argument("--format", default="onnx", help="onnx (needs the [deploy] extra) | torchscript")
    p.add_argument("--out", help="the exported file (default: beside the checkpoint, e.g. RUN_DIR/model.onnx)")
    p.add_argument("--data", help="its data set (default: the one the checkpoint records)")
    p.add_argument("--data-dir")
    p.add_argument("--check-images", type=int, default=256, help="test images the outputs are compared on")
    p.add_argument("--trust-pickle", action="store_true", help="load the file with full pickle (trusted files only)")


def _cmd_export(args) -> int:
    from .deploy.export import ExportRequest, export

    export(ExportRequest(args.model, args.format, args.out, args.data, args.data_dir, args.trust_pickle,
                         args.check_images), echo=print)
    return 0


def _latency_parser(sub) -> None:
    p = sub.add_parser("latency", help="measured latency of a pruned network against its base (PyTorch, onnxruntime)",
                       description="Time a network and its base interleaved (warm-up, median and IQR of the calls) "
                                   "at batch 1 and a larger batch, in PyTorch and onnxruntime, whole and per layer.")
    p.add_argument("model", help="checkpoint .pt (e.g. RUN_DIR/model.pt) or shipped id")
    p.add_argument("--base", help="the network to compare with (default: the base of MODEL's run, if any)")
    p.add_argument("--batch-sizes", default="1,64")
    p.add_argument("--runtimes", default="torch,onnxruntime", help="torch | onnxruntime, comma-separated")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, help="threads of both runtimes (default: torch's)")
    p.add_argument("--no-per-layer", dest="per_layer", action="store_false", help="skip the per-layer table")
    p.add_argument("--out", help="also write the measurements as JSON here")
    p.add_argument("--trust-pickle", action="store_true")


def _cmd_latency(args) -> int:
    from .deploy.latency_command import LatencyRequest, run_latency

    run_latency(LatencyRequest(args.model, args.base, args.batch_sizes, args.runtimes, args.repeats, args.warmup,
                               args.threads, args.per_layer, args.out, args.trust_pickle), echo=print)
    return 0


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="(re)write RUN_DIR/report: index.html with figures, summary.md, diagnostics")
    p.add_argument("run_dir", help="a run directory (the --out of `bayesprune run`)")


def _cmd_report(args) -> int:
    from .report import build_report

    print(f"report: {build_report(args.run_dir)}")
    return 0


def _cmd_criteria(_args) -> int:
    from .bayes.priors import PRIORS
    from .criteria import CRITERIA
    from .options import declared_options

    width = max(map(len, CRITERIA))
    for name, cls in CRITERIA.items():
        kind = "trains" if cls.trains else "data" if cls.needs_data else "weights"
        print(f"{name:<{width}} {kind:<8} {cls.description}")
        options = declared_options(cls, cls.set_by_flags)
        if options:
            print(f"{'':<{width}} {'':<8} --criterion-option: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    print("priors (--prior; bayes, bayes-svi):")
    for name, cls in PRIORS.items():
        options = declared_options(cls, ("per_layer", "prefix", "tau0"))
        listed = f"; --prior-option: {', '.join(f'{k}={v}' for k, v in options.items())}" if options else ""
        print(f"  {name:<{width}} {cls.source}{listed}")
    return 0


def _cmd_models(_args) -> int:
    from .nets import ARCHITECTURES
    from .pretrained import models_dir, shipped_models

    print(f"shipped pretrained networks ({models_dir()}):")
    for name, info in shipped_models().items():
        print(f"  {name:<24} {info['dataset']:<14} accuracy {info['test_accuracy'] * 100:.2f}%, "
              f"{info['macs'] / 1e6:.1f} M MACs")
    print("architectures (random init unless --weights):")
    for name, text in ARCHITECTURES.items():
        print(f"  {name:<24} {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayesprune", description="Bayesian channel pruning for CNNs.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _run_parser(sub)
    _compare_parser(sub)
    _plan_parser(sub)
    _train_parser(sub)
    _evaluate_parser(sub)
    _export_parser(sub)
    _latency_parser(sub)
    _report_parser(sub)
    sub.add_parser("criteria", help="list the scoring criteria")
    sub.add_parser("models", help="list shipped networks and architectures")
    return parser


COMMANDS = {"run": _cmd_run, "compare": _cmd_compare, "plan": _cmd_plan, "train": _cmd_train,
            "evaluate": _cmd_evaluate, "export": _cmd_export, "latency": _cmd_latency, "report": _cmd_report,
            "criteria": _cmd_criteria, "models": _cmd_models}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    warnings.formatwarning = lambda msg, cat, *_a, **_k: f"bayesprune: warning: {msg}\n"
    try:
        return COMMANDS[args.command](args)
    except BayesPruneError as exc:
        sys.stderr.write(f"bayesprune: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("bayesprune: interrupted; files already written are complete\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
