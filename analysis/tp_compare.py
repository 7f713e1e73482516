"""Accuracy at budget: bayesprune's methods against Torch-Pruning's importances run through
Torch-Pruning's own pruner, on one shared base checkpoint, budgets and seeds.

Both sides follow the same schedule: ``--rounds`` cuts to the geometric round targets
(:meth:`bayesprune.decision.Budget.targets`), each followed by ``--epochs`` of fine-tuning with the
same optimiser (:func:`bayesprune.training.fit`: SGD, Nesterov, cosine learning rate) and data
order seed. bayesprune methods run through ``run_pruning`` with their defaults (uniform allocation,
``--reparameterize mean``); Torch-Pruning methods use ``tp.pruner.BasePruner`` with uniform
per-layer ratios (``global_pruning=False``, ``max_pruning_ratio`` as ours), stepped 0.5% of the
channels at a time until the round's MACs target is met (Torch-Pruning's counter decides).
``tp-taylor`` accumulates gradients over 8 calibration batches once per round (not before each
of the round's small steps: that would cost 8 backward passes per 0.5% of the channels);
``tp-group-sl`` is ``GroupNormPruner`` (Fang et al. 2023, group-level sparse learning) after
``--sl-epochs`` of sparse training, which count in its total epochs.

Recorded per (method, budget, seed): accuracy right after the final cut and after fine-tuning,
MACs ratio, total training epochs, seconds. The result carries ``headline`` for the 50% budget.
Training-time methods (``pfam``, ``sep``, ``search-train``) prune over epochs, not rounds: they run
one round that searches for ``(rounds - 1) * epochs`` epochs, cuts to the final target and
fine-tunes ``epochs``, so every method trains the same total epochs;
``METHOD@ALLOCATION`` (e.g. ``l1@lstm``) runs a criterion with another ``--allocation``.
Writes analysis/results/tp_compare_<model>.json. ``--resume`` adds to an existing result file the
(budget, seed, method) cells it lacks; every row records the commit and torch threads it ran with.
``--merge A.json B.json --out C.json`` joins result files of the same set-up (e.g. cells run in
parallel processes) into one. Usage: python analysis/tp_compare.py [--quick] [--resume --out FILE]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from _common import commit, versions, write_json  # analysis/_common.py: the script's folder is on sys.path

HERE = Path(__file__).resolve().parent
OURS = ("bayes", "l1", "l2", "bn-scale", "taylor", "lamp", "fpgm")
TRAINING_TIME = ("pfam", "sep", "search-train")  # prune while training (issue 9); "l1@lstm": an allocation
THEIRS = ("tp-l1", "tp-l2", "tp-taylor", "tp-bnscale", "tp-lamp", "tp-fpgm", "tp-group-sl")


def tp_importance(method: str):
    import torch_pruning as tp

    return {"tp-l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
            "tp-l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "tp-taylor": lambda: tp.importance.GroupTaylorImportance(),
            "tp-bnscale": lambda: tp.importance.BNScaleImportance(),
            "tp-lamp": lambda: tp.importance.LAMPImportance(p=2),
            "tp-fpgm": lambda: tp.importance.FPGMImportance(p=2),
            "tp-group-sl": lambda: tp.importance.GroupMagnitudeImportance(p=2)}[method]()


def run_theirs(method: str, settings: dict, seed: int) -> dict:
    """Torch-Pruning's pruner on the same schedule and fine-tuning as ours (with ``settings["distill"]``
    > 0, distillation from the unpruned network as ``--distill`` does, at its default temperature).
    ``tp-NAME+adapt_batchnorm=True``: after each cut its BatchNorm statistics are re-estimated on the
    calibration batches a bayesprune run reads (``--adapt-batchnorm``)."""
    import torch_pruning as tp

    from bayesprune.batchnorm_adaptation import adapt_batchnorm
    from bayesprune.criteria.base import Calibration
    from bayesprune.decision import Budget
    from bayesprune.config import PruneConfig
    from bayesprune.data import iterate_batches, load_dataset
    from bayesprune.distillation import distillation_loss
    from bayesprune.groups import count_macs_params, output_layers
    from bayesprune.pretrained import resolve_model
    from bayesprune.training import FitConfig, evaluate, fit, seed_everything

    name, _, extra = method.partition("+")  # the pruner's importance, and whether to adapt after each cut
    if extra not in ("", "adapt_batchnorm=True", "adapt_batchnorm=False"):
        raise SystemExit(f"{method}: Torch-Pruning's rows take only +adapt_batchnorm=True|False")
    adapt = extra == "adapt_batchnorm=True"
    generator = seed_everything(seed)
    data = load_dataset(settings["data"]).subset(settings["train_subset"], settings["test_subset"] or None)
    model = resolve_model(settings["model"], data).model
    inputs = data.test_x[:1]
    base_macs = count_macs_params(model, inputs)[0]
    alpha = settings.get("distill") or 0.0
    distilled = (distillation_loss(copy.deepcopy(model), alpha, PruneConfig().distill_temperature)
                 if alpha > 0 else None)
    fit_config = FitConfig(epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"])
    kwargs = dict(importance=tp_importance(name), global_pruning=False, pruning_ratio=settings["max_prune_fraction"],
                  max_pruning_ratio=settings["max_prune_fraction"], iterative_steps=200,
                  ignored_layers=output_layers(model, inputs))
    pruner = (tp.pruner.GroupNormPruner(model, inputs, reg=5e-4, **kwargs) if name == "tp-group-sl"
              else tp.pruner.BasePruner(model, inputs, **kwargs))
    loss_fn, epochs = nn.CrossEntropyLoss(), 0.0
    if name == "tp-group-sl":  # sparse training first (counts in the epochs)
        epochs += _sparse_training(model, data, pruner, settings, generator)
    record = {"method": method, "seed": seed, "rounds": []}
    # the batches a bayesprune run calibrates on (Calibration: its seed, size and count)
    calibration = Calibration(data, torch.device("cpu"), settings["batch_size"], settings.get("calibration_batches", 8),
                              seed)
    for target in Budget(settings["target_macs"], rounds=settings["rounds"]).targets():
        if name == "tp-taylor":  # gradients of the calibration batches, once per round
            model.zero_grad()
            for _, (xb, yb) in zip(range(8), iterate_batches(data.train_x, data.train_y, 128)):
                loss_fn(model(xb), yb).backward()
        while count_macs_params(model, inputs)[0] > target * base_macs:
            if pruner.current_step >= pruner.iterative_steps:
                raise RuntimeError(f"{method}: the pruner's steps ran out above {target} of the MACs")
            pruner.step()  # torch-pruning cuts .grad with the weights, so Taylor's scores stay aligned
        model.zero_grad(set_to_none=True)
        if adapt:
            adapt_batchnorm(model, calibration.batches())
        after_cut = evaluate(model, data.test_x, data.test_y, torch.device("cpu"))
        fit(model, data, fit_config, generator, torch.device("cpu"), progress=False, loss_fn=distilled)
        epochs += settings["epochs"]
        record["rounds"].append({"accuracy_after_cut": after_cut,
                                 "accuracy": evaluate(model, data.test_x, data.test_y, torch.device("cpu"))})
    macs = count_macs_params(model, inputs)[0]
    return {**record, "accuracy": record["rounds"][-1]["accuracy"],
            "accuracy_after_final_cut": record["rounds"][-1]["accuracy_after_cut"], "macs_ratio": macs / base_macs,
            "epochs": epochs}


def _sparse_training(model, data, pruner, settings, generator) -> float:
    from bayesprune.data import iterate_batches

    opt = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(int(settings["sl_epochs"])):
        for xb, yb in iterate_batches(data.train_x, data.train_y, settings["batch_size"], shuffle=True,
                                      generator=generator):
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            pruner.regularize(model)
            opt.step()
    model.eval()
    return float(int(settings["sl_epochs"]))


def method_options(method: str) -> tuple[str, dict]:
    """``"CRITERION[@ALLOCATION][+FIELD=VALUE...]"`` -> (criterion, PruneConfig overrides); e.g.
    ``l1@lstm``, ``bayes@uniform``, ``bayes+anneal_target=final``; values take the field's type.
    ``+option.NAME=VALUE`` is the criterion's own option (``--criterion-option NAME=VALUE``)."""
    from dataclasses import fields

    from bayesprune.config import PruneConfig

    head, *pairs = method.split("+")
    criterion, _, allocation = head.partition("@")
    options = {"allocation": allocation} if allocation else {}
    types = {f.name: type(f.default) for f in fields(PruneConfig)}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key.startswith("option."):  # checked and typed by the criterion (bayesprune.options)
            options.setdefault("criterion_options", {})[key.removeprefix("option.")] = value
            continue
        if key not in types:
            raise SystemExit(f"{method}: {key!r} is not a PruneConfig field")
        kind = types[key]
        if kind is type(None) and value in ("True", "False"):  # an optional switch (None: its default rule)
            kind = bool
        options[key] = value == "True" if kind is bool else kind(value) if kind in (int, float) else value
    return criterion, options


def ours_options(method: str, settings: dict) -> tuple[str, dict]:
    """(criterion, PruneConfig options) of ``method`` on the set-up ``settings`` (its data, budget,
    rounds, training and, where given, reparameterization, calibration and distillation)."""
    options = {k: settings[k] for k in ("model", "data", "target_macs", "rounds", "epochs", "lr", "batch_size",
                                        "train_subset", "test_subset", "max_prune_fraction")}
    options.update({k: settings[k] for k in ("reparameterize", "calibration_batches", "distill")
                    if settings.get(k) is not None})
    options["test_subset"] = options["test_subset"] or None  # 0: the whole test set
    criterion, overrides = method_options(method)
    options.update(overrides)
    return criterion, options


def run_ours(method: str, settings: dict, seed: int) -> dict:
    from bayesprune.config import PruneConfig
    from bayesprune.report.load import load_run
    from bayesprune.rounds import run_pruning

    criterion, options = ours_options(method, settings)
    if criterion == "bayes-svi":
        options.update(svi_steps=settings["svi_steps"], chains=settings["chains"])
    if criterion in TRAINING_TIME:  # one round: search, cut, fine-tune; the same total epochs as the others
        total = settings["rounds"] * settings["epochs"]
        options.update(rounds=1, search_epochs=total - settings["epochs"], epochs=settings["epochs"])
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_pruning(PruneConfig(criterion=criterion, seed=seed, device="cpu", progress=False, report=False,
                                          out=f"{tmp}/run", **options))
        rounds = load_run(f"{tmp}/run").rounds  # each round's full record (the summary keeps a few keys)
    extra = 0.5 * settings["rounds"] if method == "slimming" else 0.0  # its sparsity training per round
    return {"method": method, "seed": seed, "accuracy": summary["final"]["accuracy"],
            "accuracy_after_final_cut": summary["rounds"][-1]["accuracy_after_cut"],
            "macs_ratio": summary["final_ratio"]["macs"], "epochs": settings["rounds"] * settings["epochs"] + extra,
            "rounds": [_round_row(r) for r in rounds]}


def _round_row(record: dict) -> dict:
    """A round's accuracies and times and, from its full record (:func:`bayesprune.report.load_run`), the
    layer widths after its cut and, where the width check ran, the rule it chose for the cut (and for the
    prediction of the final cut): what a result says about widths."""
    row = {k: record[k] for k in ("accuracy_after_cut", "accuracy", "prediction_auroc", "statistics_seconds",
                                  "decision_seconds", "finetune_seconds")}
    if record.get("widths"):
        row["widths"] = {group: after for group, (_, after) in record["widths"].items()}
    check = record.get("width_check")
    if check:
        row["width_choice"] = check["chosen"]
        if "prediction" in check:
            row["prediction_choice"] = check["prediction"]["chosen"]
    return row


def summarise(rows: list[dict]) -> dict:
    table = {}
    for row in rows:
        table.setdefault(f"{row['target']}", {}).setdefault(row["method"], []).append(row)
    out = {}
    for target, methods in table.items():
        out[target] = {}
        for method, runs in methods.items():
            accuracies = [100 * r["accuracy"] for r in runs]
            after_cut = [100 * r["accuracy_after_final_cut"] for r in runs]
            out[target][method] = {"accuracy_mean": statistics.mean(accuracies),
                                   "accuracy_sd": statistics.stdev(accuracies) if len(runs) > 1 else None,
                                   "after_final_cut_mean": statistics.mean(after_cut), "seeds": len(runs),
                                   "macs_ratio": statistics.mean(r["macs_ratio"] for r in runs),
                                   "epochs": runs[0]["epochs"]}
    return out


def headline(summary: dict, target: str = "0.5") -> dict | None:
    methods = summary.get(target)
    if not methods or "bayes" not in methods:
        return None
    others = {m: v["accuracy_mean"] for m, v in methods.items() if m != "bayes"}
    if not others:
        return None
    best = max(others, key=others.get)
    bayes = methods["bayes"]["accuracy_mean"]
    return {"bayes": bayes, "best_other": others[best], "best_other_name": best, "margin_points": bayes - others[best]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-fashion-mnist")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--methods", default=",".join(OURS + THEIRS))
    parser.add_argument("--targets", default="0.5,0.2")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-subset", type=int, default=4000)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--svi-steps", type=int, default=150)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--sl-epochs", type=int, default=1)
    parser.add_argument("--max-prune-fraction", type=float, default=0.9)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (CI)")
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --out and run only the missing (budget, seed, method) cells")
    parser.add_argument("--table", metavar="RESULT_JSON", help="only write RESULT_JSON's Markdown table (.md)")
    parser.add_argument("--merge", nargs="+", metavar="RESULT_JSON",
                        help="only join these result files (same set-up, no cell twice) into --out")
    args = parser.parse_args()
    if args.merge:
        if not args.out:
            parser.error("--merge needs --out")
        merge([Path(p) for p in args.merge], Path(args.out))
        return
    if args.table:
        path = Path(args.table)
        path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))
        print(path.with_suffix(".md").read_text())
        return
    if args.quick:
        args.model, args.data, args.targets, args.seeds = "smallcnn-mnist5k", "mnist5k", "0.5", 1
        args.methods = "bayes,l1,l1@lstm,pfam,sep,search-train,tp-l1,tp-group-sl"
        args.rounds, args.epochs, args.train_subset, args.test_subset, args.svi_steps = 2, 0.1, 256, 128, 5
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp()) / "quick.json" if args.quick
                                           else HERE / "results" / f"tp_compare_{args.model}.json")
    code = commit()  # the code the numbers come from, taken before any run
    rows, calls = earlier_rows(out, args, "--resume") if args.resume else ([], [])
    done = {cell(row) for row in rows}
    for target in [float(t) for t in args.targets.split(",")]:
        for seed in range(args.seeds):
            for method in args.methods.split(","):
                if (target, seed, method) in done:
                    continue
                settings = {**vars(args), "target_macs": target}
                start = time.perf_counter()
                row = (run_theirs if method.startswith("tp-") else run_ours)(method, settings, seed)
                rows.append({**row, "target": target, "seconds": time.perf_counter() - start, "commit": code,
                             "torch_threads": torch.get_num_threads()})
                print(f"{target} seed {seed} {method}: {100 * row['accuracy']:.2f}% "
                      f"(after final cut {100 * row['accuracy_after_final_cut']:.2f}%), "
                      f"MACs {row['macs_ratio']:.3f}, {rows[-1]['seconds']:.0f} s", flush=True)
                _write(out, args, rows, code, calls)
    print(json.dumps(headline(summarise(rows)), indent=1))
    print(f"wrote {out}")


def cell(row: dict) -> tuple[float, int, str]:
    """What a row measured: (budget, seed, method); a result file holds each cell once."""
    return row["target"], row["seed"], row["method"]


# arguments that may differ between a result file and the run that resumes it
_RESUMABLE = {"methods", "targets", "seeds", "out", "resume", "quick", "table", "merge"}


def load_result(path: Path, option: str) -> dict:
    """A result file, or a one-line exit naming the missing file (``option`` names the caller)."""
    if not path.exists():
        hint = "run without --resume to start it" if option == "--resume" else "check the path"
        raise SystemExit(f"{option}: {path} does not exist; {hint}")
    return json.loads(path.read_text())


def earlier_rows(out: Path, args, option: str) -> tuple[list[dict], list[dict]]:
    """The rows of ``out`` (each with the commit and torch threads it ran with) and the arguments of
    the calls that wrote them, if its set-up equals ``args``'s; ``option`` names the caller in errors."""
    earlier = load_result(out, option)
    differ = sorted(k for k, v in vars(args).items()
                    if k not in _RESUMABLE and earlier["arguments"].get(k, v) != v)
    if differ:
        raise SystemExit(f"{option}: {out} was measured with other settings ({', '.join(differ)}); "
                         "pass the same ones or write to a new --out")
    rows = [{**row, "commit": row.get("commit", earlier["commit"]),
             "torch_threads": row.get("torch_threads", earlier["torch_threads"])} for row in earlier["rows"]]
    return rows, earlier.get("earlier_arguments", []) + [earlier["arguments"]]


def merge(paths: list[Path], out: Path) -> None:
    """Join result files measured with the same set-up; a (budget, seed, method) cell may appear once."""
    first = argparse.Namespace(**load_result(paths[0], "--merge")["arguments"])
    rows, calls = [], []
    for path in paths:
        more, more_calls = earlier_rows(path, first, "--merge")
        rows += more
        calls += more_calls
    counts = Counter(cell(row) for row in rows)
    twice = sorted(c for c, n in counts.items() if n > 1)
    if twice:
        raise SystemExit(f"--merge: cells measured in more than one file: {twice}; drop one of the files")
    methods = list(dict.fromkeys(row["method"] for row in rows))
    targets = list(dict.fromkeys(f"{row['target']:g}" for row in rows))
    joined = argparse.Namespace(**{**vars(first), "methods": ",".join(methods), "targets": ",".join(targets),
                                   "seeds": max(row["seed"] for row in rows) + 1, "out": str(out), "merge": None})
    _write(out, joined, rows, None, calls)
    print(f"merged {len(rows)} rows of {len(paths)} files into {out}")


def markdown(result: dict) -> str:
    """The README's table: mean (sd) over seeds per budget and method, best of each budget in bold."""
    lines = []
    for target, methods in result["summary"].items():
        best = max(v["accuracy_mean"] for v in methods.values())
        lines += [f"MACs target {target} ({result['arguments']['model']}, {result['label']}):", "",
                  "| method | accuracy after fine-tuning | right after the final cut | MACs ratio | epochs | seeds |",
                  "|---|---|---|---|---|---|"]
        for method, v in sorted(methods.items(), key=lambda kv: -kv[1]["accuracy_mean"]):
            accuracy = f"{v['accuracy_mean']:.2f}" + (f" ± {v['accuracy_sd']:.2f}" if v["accuracy_sd"] else "")
            accuracy = f"**{accuracy}**" if v["accuracy_mean"] == best else accuracy
            lines.append(f"| `{method}` | {accuracy}% | {v['after_final_cut_mean']:.2f}% | {v['macs_ratio']:.3f} | "
                         f"{v['epochs']:g} | {v['seeds']} |")
        lines.append("")
    if result.get("headline"):
        h = result["headline"]
        lines.append(f"Headline (50%): bayes {h['bayes']:.2f}%, best other `{h['best_other_name']}` "
                     f"{h['best_other']:.2f}%, margin {h['margin_points']:+.2f} points.")
    return "\n".join(lines) + "\n"


def _write(out: Path, args, rows: list[dict], code: str | None, calls: list[dict]) -> None:
    """Rewritten after every cell, so an interrupted benchmark keeps what it measured."""
    summary = summarise(rows)
    threads = sorted({row["torch_threads"] for row in rows})  # every row carries its own (run, resume, merge)
    result = {"script": "analysis/tp_compare.py", "arguments": vars(args), "device": "cpu",
              "label": "CPU-sized (2 cores): subsets, few epochs; not the GPU benchmark of issue 7",
              "headline": headline(summary), "summary": summary, "rows": rows, "commit": code,
              "row_commits": sorted({row["commit"] for row in rows if row.get("commit")}),
              "earlier_arguments": calls, **versions(),
              "torch_threads": threads[0] if len(threads) == 1 else threads}
    write_json(out, result)


if __name__ == "__main__":
    main()
