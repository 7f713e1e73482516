"""``bayesprune run`` and ``bayesprune compare``: their options and commands."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path

from .common import calibration_options, declared_options, fresh_run_dir, model_options, posterior_options


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="prune a network in rounds and write a run directory",
                       description="Prune a trained CNN to a MACs/params budget in iterative rounds.")
    _prune_options(p, compare=False)


def _compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="run several methods x budgets x seeds on one base model (resumable)",
                       description="Compare pruning methods under the same budget, rounds, fine-tuning and "
                                   "seeds; rerun the same command to resume.")
    _prune_options(p, compare=True)


def _prune_options(p, compare: bool) -> None:
    from ..config import PruneConfig

    defaults = PruneConfig()
    model_options(p, defaults)
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
        p.add_argument("--latency-feedback", type=int, default=defaults.latency_feedback, metavar="N",
                       help="with --target-latency: time up to N final cuts against the base network and keep "
                            "the one nearest the budget (the table times layers alone; default 5, 0: trust "
                            "the table)")
    p.add_argument("--rounds", type=int, default=defaults.rounds)
    p.add_argument("--schedule", default=defaults.schedule, help="budget per round: geometric | linear")
    p.add_argument("--allocation", default=defaults.allocation,
                   help="uniform (per layer) | global | lstm (per-layer rates from an LSTM policy); "
                        "default: the criterion's own (bayes: widths from its posterior; others: uniform)")
    p.add_argument("--max-prune-fraction", type=float, default=defaults.max_prune_fraction,
                   help="most any one group may lose (default 0.9)")
    p.add_argument("--round-to", type=_round_to, default=defaults.round_to,
                   help="keep a multiple of this many channels per layer (8 or 16 for real speed-ups on "
                        "CPU/GPU kernels), or auto: the widths at the steps of each layer's latency, timed at "
                        "every width on this machine (--latency-batch) and written to width_steps.json; "
                        "needs --allocation uniform")
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
    p.add_argument("--lr", type=float, default=defaults.lr,
                   help="fine-tune learning rate (bayes's masks annealed toward the final cut were measured at the "
                        "default 0.01; at 0.05 they collapsed on ResNet-20: use --no-annealing or --anneal-target "
                        "current there)")
    p.add_argument("--lr-schedule", default=defaults.lr_schedule,
                   help="round: each round's fine-tuning decays the learning rate from --lr to 0 (default) | "
                        "run: one cosine over all rounds' fine-tuning, each round taking up where the last stopped")
    calibration_options(p, defaults)
    p.add_argument("--expand", type=float, default=defaults.expand,
                   help="widen the model by this factor first (Net2Wider), then prune to the same budget")
    p.add_argument("--expand-noise", type=float, default=defaults.expand_noise,
                   help="noise on the widened copies' filters, relative to the filters' sd")
    b = p.add_argument_group("bayes criteria (bayes; bayes-svi: the frozen-network SVI posterior)")
    posterior_options(b, defaults)
    b.add_argument("--tau0", type=float, default=defaults.tau0,
                   help="scale of the global half-Cauchy (default 1 for bayes, 0.1 for bayes-svi)")
    b.add_argument("--per-layer-scale", action="store_true", help="add a per-layer scale (hierarchical)")
    b.add_argument("--svi-steps", type=int, default=defaults.svi_steps, help="bayes-svi")
    b.add_argument("--svi-lr", type=float, default=defaults.svi_lr, help="bayes-svi")
    b.add_argument("--inference", default=defaults.inference, help="svi | nuts (full-data NUTS, small models)")
    b.add_argument("--svi-train-weights", action="store_true",
                   help="update the network's weights (MAP) jointly with the gates during SVI")
    b.add_argument("--forgetting", type=float, default=defaults.forgetting,
                   help="rho in [0, 1]: the previous round's posterior^rho is the next prior (0: refit)")
    b.add_argument("--no-annealing", dest="annealing", action="store_false",
                   help="fine-tune without the annealed soft masks (ablation)")
    b.add_argument("--anneal-target", default=defaults.anneal_target,
                   help="final: the Gibbs mask of p(kept by the final round), which dims the channels the "
                        "posterior predicts later rounds prune, so the final cut costs little (default) | current: "
                        "survivors carry p(kept this round)^T, so each round fine-tunes at its own capacity | "
                        "last: current, and final in the last annealed round")
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


def _cmd_run(args) -> int:
    from ..config import PruneConfig
    from ..rounds import run_pruning

    if args.resume:
        from ..rounds import resume_run

        with _processes(_resumed_device(args.resume)) as collective:
            summary = resume_run(args.resume, echo=print, progress=not args.quiet, collective=collective)
        _say(collective, _table(summary), f"run directory: {args.resume}")
        return 0
    names = {f.name for f in fields(PruneConfig)}
    values = {k: v for k, v in vars(args).items() if k in names} | declared_options(args)
    values |= {k: _target(values[k], "--" + k.replace("_", "-")) for k in ("target_macs", "target_params")}
    values["out"] = args.out or fresh_run_dir()
    config = PruneConfig(**values, progress=not args.quiet)
    with _processes(config.device) as collective:
        summary = run_pruning(config, echo=print, collective=collective)
    _say(collective, _table(summary), f"run directory: {config.out}")
    return 0


def _cmd_compare(args) -> int:
    from ..compare import run_grid
    from ..config import PruneConfig
    from ..errors import BudgetError, ConfigError

    names = {f.name for f in fields(PruneConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and k not in ("target_macs", "out")}
    values |= declared_options(args)
    try:
        targets = [float(t) for t in args.target_macs.split(",")]
    except ValueError:
        raise BudgetError(f"--target-macs must be comma-separated numbers, got {args.target_macs!r}") from None
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    backend = _backend(args)
    with _processes(values["device"]) as collective:
        if collective.distributed:  # every process runs each cell (_backend refused ray under torchrun)
            backend = replace(backend, collective=collective)
        run_grid(PruneConfig(**values), methods, targets, args.seeds, args.out, progress=not args.quiet,
                 backend=backend)
    if collective.is_main:  # the one process that wrote them
        print((Path(args.out) / "table.md").read_text())
        print(f"comparison directory: {args.out} (results.csv, table.md, pareto.png)")
    return 0


@contextmanager
def _processes(device: str):
    """The job's processes (:func:`bayesprune.distributed.join`; one without torchrun), left at the end."""
    from ..distributed import join, leave

    collective = join(device)
    try:
        yield collective
    finally:
        leave(collective)


def _resumed_device(run_dir: str) -> str:
    """The --device a run to resume was started with (to pick the process group's backend)."""
    import json

    try:
        return json.loads((Path(run_dir) / "config.json").read_text())["config"]["device"]
    except (OSError, ValueError, KeyError):
        return "auto"  # resume_run itself names what is wrong with the directory


def _say(collective, *lines: str) -> None:
    if collective.is_main:
        print(*lines, sep="\n")


def _round_to(value: str):
    """``--round-to``: a whole number or ``auto`` (anything else is the budget's one-line error)."""
    return int(value) if value.strip().lstrip("-").isdigit() else value


def _target(value: str | None, flag: str):
    """A budget flag's value: a number, ``auto`` or unset (config.json records a number)."""
    from ..errors import BudgetError

    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise BudgetError(f"{flag} must be a number in (0, 1] or auto, got {value!r}") from None


def _backend(args):
    """``--backend`` as an object (resolved here, at the edge)."""
    from ..backends import RayBackend, Sequential
    from ..errors import ConfigError

    if args.backend == "sequential":
        if args.ray_address:
            raise ConfigError("--ray-address needs --backend ray")
        return Sequential()
    if args.backend == "ray":
        from ..distributed import launched_processes

        if launched_processes() > 1:
            raise ConfigError("--backend ray runs each cell as a Ray task; start it in one process, not "
                              "under torchrun")
        return RayBackend(args.ray_address, args.cpus_per_cell, args.gpus_per_cell)
    raise ConfigError(f"unknown --backend {args.backend!r}; choose sequential or ray")


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

