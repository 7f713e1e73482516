"""``bayesprune train | evaluate | report | criteria | models``: their options and commands."""
from __future__ import annotations

import json


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
    p.add_argument("--train-subset", type=int, metavar="N",
                   help="train on the first N training images only; the rest stay unseen, and `bayesprune plan` "
                        "measures its cuts on them (recorded in the card as train_images)")
    p.add_argument("--quiet", action="store_true")


def _cmd_train(args) -> int:
    from ..train_base import TrainConfig, train_base

    config = TrainConfig(model=args.model, data=args.data, out=args.out, data_dir=args.data_dir,
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         device=args.device, progress=not args.quiet, train_subset=args.train_subset)
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
    from ..data import load_dataset
    from ..groups import count_macs_params
    from ..pretrained import resolve_model
    from ..training import evaluate, resolve_device

    device = resolve_device(args.device)
    data = load_dataset(args.data, args.data_dir)
    resolved = resolve_model(args.model, data, trust_pickle=args.trust_pickle)
    macs, params = count_macs_params(resolved.model, data.test_x[:1])
    accuracy = evaluate(resolved.model, data.test_x, data.test_y, device)
    print(json.dumps({"model": resolved.source, "data": data.name, "accuracy": accuracy, "macs": macs,
                      "params": params}))
    return 0


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="(re)write RUN_DIR/report: index.html with figures, summary.md, diagnostics")
    p.add_argument("run_dir", help="a run directory (the --out of `bayesprune run`)")


def _cmd_report(args) -> int:
    from ..report import build_report

    print(f"report: {build_report(args.run_dir)}")
    return 0


def _cmd_criteria(_args) -> int:
    from ..bayes.priors import PRIORS
    from ..criteria import CRITERIA
    from ..options import declared_options

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
    from ..nets import ARCHITECTURES
    from ..pretrained import models_dir, shipped_models

    print(f"shipped pretrained networks ({models_dir()}):")
    for name, info in shipped_models().items():
        print(f"  {name:<24} {info['dataset']:<14} accuracy {info['test_accuracy'] * 100:.2f}%, "
              f"{info['macs'] / 1e6:.1f} M MACs")
    print("architectures (random init unless --weights):")
    for name, text in ARCHITECTURES.items():
        print(f"  {name:<24} {text}")
    return 0

