"""How much room issue 16's targets leave: the unpruned network, fine-tuned exactly as every method of
``analysis/bayes_v2.py`` is (same data, 3 rounds of 2 epochs, the same seeds, with and without
distillation), is the ceiling a pruned network of that set-up can be expected to reach.

A cell is ``run_ours("l2", ...)`` at ``target_macs`` 1.0: the rounds cut nothing and fine-tune the
whole network (with ``--distill`` the teacher is the network's own starting point). The summary puts
each regime's ceiling beside the stored ``bayes_v2`` result: per budget, the default ``bayes``'s and
the best other method's gap to the ceiling (paired by seed), and what the issue's margin would need
(best other + 0.3 points at 50%, + 0.5 at 20%) against the ceiling.

Usage: python analysis/headroom.py [--seeds 3] [--first-seed 0] [--only fine-tune|fine-tune+distill]
       [--out analysis/results/headroom_resnet20-fashion-mnist.json]
A rerun measures only the missing cells and rewrites the summary against the current bayes_v2 result.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from _common import commit, versions, write_json
from bayes_v2 import OUT as BAYES_V2_OUT
from bayes_v2 import SETUP, settings_for
from tp_compare import run_ours

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "headroom_resnet20-fashion-mnist.json"
REGIMES = ("fine-tune", "fine-tune+distill")
HEADLINES = {"fine-tune": "headline", "fine-tune+distill": "headline_distill"}
TARGET_MARGIN = {"0.5": 0.3, "0.2": 0.5}  # issue 16's margins over the best other method, in points


def ceiling_cell(regime: str, seed: int) -> dict:
    start = time.perf_counter()
    row = run_ours("l2", settings_for(regime, SETUP, 1.0), seed)
    return {"regime": regime, "seed": seed, "accuracy": row["accuracy"], "macs_ratio": row["macs_ratio"],
            "rounds": [r["accuracy"] for r in row["rounds"]], "seconds": time.perf_counter() - start,
            "commit": commit(), "torch_threads": torch.get_num_threads()}


def against(ceiling_by_seed: dict[int, float], accuracy_by_seed: dict[str, float]) -> dict | None:
    """Mean and sd over the shared seeds of (accuracy - ceiling), both in percent; None if none is shared."""
    gaps = [a - ceiling_by_seed[int(s)] for s, a in accuracy_by_seed.items() if int(s) in ceiling_by_seed]
    if not gaps:
        return None
    return {"mean": statistics.mean(gaps), "sd": statistics.stdev(gaps) if len(gaps) > 1 else None,
            "seeds": len(gaps)}


def summarise(rows: list[dict], bayes_v2: dict) -> dict:
    """Per regime: the ceiling's mean and sd, and per budget the gap of ``bayes_v2``'s headline methods to
    it and the accuracy the issue's margin would need (``required``: best other + margin)."""
    out = {}
    for regime in REGIMES:
        cells = [r for r in rows if r["regime"] == regime]
        if not cells:
            continue
        ceiling = {r["seed"]: 100 * r["accuracy"] for r in cells}
        values = list(ceiling.values())
        entry = {"ceiling_mean": statistics.mean(values),
                 "ceiling_sd": statistics.stdev(values) if len(values) > 1 else None, "seeds": sorted(ceiling),
                 "budgets": {}}
        for budget, head in bayes_v2.get(HEADLINES[regime], {}).items():
            methods = bayes_v2["summary"][regime][budget]
            required = head["best_other"] + TARGET_MARGIN[budget]
            entry["budgets"][budget] = {
                "bayes": head["bayes_method"], "best_other": head["best_other_name"],
                "bayes_minus_ceiling": against(ceiling, methods[head["bayes_method"]]["accuracy_by_seed"]),
                "best_other_minus_ceiling": against(ceiling, methods[head["best_other_name"]]["accuracy_by_seed"]),
                "required_for_target": required, "required_minus_ceiling": required - entry["ceiling_mean"]}
        out[regime] = entry
    return out


def markdown(result: dict) -> str:
    """The summary as a table (readme_tables renders it into analysis/README.md)."""
    def gap(value: dict | None) -> str:
        if value is None:
            return "–"
        return f"{value['mean']:+.2f}" + (f" ± {value['sd']:.2f}" if value["sd"] is not None else "") + \
            f" ({value['seeds']} seeds)"

    lines = ["| regime | unpruned, fine-tuned alike | budget | `bayes` - ceiling | best other - ceiling "
             "| the target needs | target - ceiling |", "|---|---|---|---|---|---|---|"]
    for regime, entry in result["summary"].items():
        sd = f" ± {entry['ceiling_sd']:.2f}" if entry["ceiling_sd"] is not None else ""
        ceiling = f"{entry['ceiling_mean']:.2f}{sd}% ({len(entry['seeds'])} seeds)"
        for budget, b in sorted(entry["budgets"].items(), key=lambda kv: -float(kv[0])):
            lines.append(f"| {regime} | {ceiling} | {budget} | {gap(b['bayes_minus_ceiling'])} "
                         f"| `{b['best_other']}` {gap(b['best_other_minus_ceiling'])} "
                         f"| {b['required_for_target']:.2f}% | {b['required_minus_ceiling']:+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--only", choices=REGIMES, action="append", help="regimes to run (default both)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = Path(args.out)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    done = {(r["regime"], r["seed"]) for r in rows}
    bayes_v2 = json.loads(BAYES_V2_OUT.read_text())
    for regime in args.only or REGIMES:
        for seed in range(args.first_seed, args.seeds):
            if (regime, seed) in done:
                continue
            rows.append(ceiling_cell(regime, seed))
            print(f"{regime} seed {seed}: {100 * rows[-1]['accuracy']:.2f}% ({rows[-1]['seconds']:.0f} s)", flush=True)
            _write(out, rows, bayes_v2)
    _write(out, rows, bayes_v2)  # with nothing left to run: the summary against today's bayes_v2 result


def _write(out: Path, rows: list[dict], bayes_v2: dict) -> None:
    write_json(out, {"script": "analysis/headroom.py", "setup": SETUP, "device": "cpu",
                     "summary": summarise(rows, bayes_v2), "rows": rows, **versions()})


if __name__ == "__main__":
    main()
