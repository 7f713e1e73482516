"""What bayes's width check sees with and without adaptive BatchNorm (Li et al. 2020): round 1 of
bayes_v2.py's distill set-up, its default bayes, every candidate's held-out accuracy and
log-likelihood for this cut and for the predicted final cut, with ``adapt_batchnorm`` off and on.
Fine-tuning is cut to 0.02 epochs (only round 1's check is read: it comes before any fine-tuning).
Writes analysis/results/width_check_adaptation.json.
Usage: python analysis/width_check_adaptation.py [--seeds 1] [--targets 0.2] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import commit, versions, write_json
from bayes_v2 import OBS_FINAL, SETUP, settings_for
from tp_compare import ours_options

OUT = Path(__file__).resolve().parent / "results" / "width_check_adaptation.json"
DEFAULT = f"{OBS_FINAL}+option.follow_prediction=True"  # bayes_v2's default bayes (stop 36 on)


def first_check(target: float, seed: int, adapt: bool, quick: bool) -> dict:
    """Round 1's width-check record of the default bayes at ``target``."""
    from bayesprune.config import PruneConfig
    from bayesprune.report.load import load_run
    from bayesprune.rounds import run_pruning

    criterion, options = ours_options(f"{DEFAULT}+option.adapt_batchnorm={adapt}",
                                      settings_for("fine-tune+distill", SETUP, target))
    options.update(epochs=0.02, test_subset=500 if quick else 2000, rounds=1 if quick else 3)
    if quick:
        options.update(train_subset=1200, calibration_batches=2)
    with tempfile.TemporaryDirectory() as tmp:
        run_pruning(PruneConfig(criterion=criterion, seed=seed, device="cpu", progress=False, report=False,
                                out=f"{tmp}/run", **options))
        return load_run(f"{tmp}/run").rounds[0]["width_check"]


def _line(record: dict) -> str:
    return ", ".join(f"{label} {100 * accuracy:.1f}%" for label, accuracy in
                     zip(record["candidates"], record["held_out_accuracy"])) + f" -> {record['chosen']}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--targets", default="0.2")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (CI); writes nothing")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    rows = []
    for target in [float(t) for t in args.targets.split(",")]:
        for seed in range(args.seeds):
            for adapt in (False, True):
                record = first_check(target, seed, adapt, args.quick)
                rows.append({"target": target, "seed": seed, "adapt_batchnorm": adapt, "width_check": record})
                print(f"{target:g} seed {seed} adapt={adapt}: cut: {_line(record)}; predicted final cut: "
                      f"{_line(record['prediction']) if 'prediction' in record else 'none'}", flush=True)
    if not args.quick:
        write_json(Path(args.out), {"script": "analysis/width_check_adaptation.py", "commit": commit(), **versions(),
                                    "argv": sys.argv[1:], "device": "cpu", "method": DEFAULT, "rows": rows})


if __name__ == "__main__":
    main()
