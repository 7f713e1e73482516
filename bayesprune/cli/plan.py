"""``bayesprune plan``: its options and command."""
from __future__ import annotations

from dataclasses import fields

from .common import calibration_options, declared_options, fresh_run_dir, model_options, posterior_options


def _plan_parser(sub) -> None:
    from ..config import PruneConfig
    from ..plan import DEFAULT_FRACTIONS, PlanConfig

    defaults, plan = PruneConfig(), PlanConfig()
    p = sub.add_parser("plan", help="before any cut: predicted accuracy at a grid of budgets, and the budget the "
                                    "evidence supports",
                       description="Fit the bayes posterior once on the base network and predict, for each budget, "
                                   "the accuracy right after the cut (mean and interval over posterior draws, on "
                                   "held-out training images) and the surviving channels per layer; report the "
                                   "budget at which Bayesian model reduction stops improving the evidence.")
    model_options(p, defaults)
    p.add_argument("--budgets", default=",".join(f"{f:g}" for f in DEFAULT_FRACTIONS),
                   help="comma-separated fractions of the base MACs (or params) to keep")
    p.add_argument("--params", action="store_true", help="the budgets are fractions of the params, not the MACs")
    p.add_argument("--plan-draws", type=int, default=plan.evaluated_draws,
                   help="posterior draws whose cuts are evaluated per budget (the interval's resolution)")
    p.add_argument("--holdout", type=int, default=plan.holdout,
                   help="last N training images: never read by the posterior, every cut is measured on them "
                        "(default 2000, fewer if the calibration images leave fewer)")
    p.add_argument("--interval", type=float, default=plan.interval, help="central interval of the prediction")
    p.add_argument("--base-accuracy", type=float, default=plan.base_accuracy,
                   help="the base network's test accuracy (0-1): predictions are it minus the loss measured on "
                        "held-out training images (default: a shipped model's card, else the held-out accuracy)")
    p.add_argument("--max-prune-fraction", type=float, default=defaults.max_prune_fraction)
    calibration_options(p, defaults)
    posterior_options(p, defaults)
    p.add_argument("--criterion-option", action="append", metavar="NAME=VALUE", help="an option of bayes")
    p.add_argument("--train-subset", type=int, help="use only the first N training images")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device, help="auto | cpu | cuda")
    p.add_argument("--out", help="plan directory (default: a new runs/plan-YYYYmmdd-HHMMSS)")
    p.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_plan(args) -> int:
    from ..config import PruneConfig
    from ..errors import BudgetError
    from ..plan import PlanConfig, make_plan, write_plan
    from ..plan.render import plan_table
    from ..runs import RunDir

    names = {f.name for f in fields(PruneConfig)}
    values = {k: v for k, v in vars(args).items() if k in names} | declared_options(args)
    values["out"] = args.out or fresh_run_dir("plan")
    try:
        fractions = tuple(float(f) for f in args.budgets.split(","))
    except ValueError:
        raise BudgetError(f"--budgets must be comma-separated numbers in (0, 1], got {args.budgets!r}") from None
    config = PlanConfig(PruneConfig(**values, progress=not args.quiet), fractions, "params" if args.params else "macs",
                        args.plan_draws, args.holdout, args.interval, base_accuracy=args.base_accuracy)
    plan = make_plan(config, echo=print)  # validates everything, --out included, before any work
    out = config.run.out
    write_plan(plan, RunDir(out, config.run.overwrite).path)
    print(plan_table(plan))
    print(plan["sentence"])
    print(f"plan directory: {out} (plan.json, plan.md, plan.png)")
    return 0

