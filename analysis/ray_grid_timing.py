"""Issue 20's Ray measurement: wall time of a 4-cell comparison grid run sequentially and with
`--backend ray` (a local Ray instance with all cores, one CPU per cell), on this machine.

Cells: the shipped small CNN, `l1` and `l2` x 2 seeds at 50% of the MACs, 1 round, 1 epoch on 2,000
training images. Each backend runs the same grid into its own fresh folder; the Ray time includes
starting the local Ray instance. Writes analysis/results/ray_grid_timing.json.
Usage: python analysis/ray_grid_timing.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import _common  # analysis/_common.py: scripts run from this folder have it on sys.path

RESULTS = Path(__file__).resolve().parent / "results"


def grid(out: str, backend: str, quick: bool) -> float:
    from bayesprune.cli import main

    args = ["compare", "--methods", "l1,l2", "--target-macs", "0.5", "--seeds", "2", "--rounds", "1", "--epochs",
            "0.1" if quick else "1", "--train-subset", "256" if quick else "2000", "--test-subset",
            "128" if quick else "1000", "--quiet", "--out", out, "--backend", backend]
    start = time.perf_counter()
    if main(args) != 0:
        raise SystemExit(f"the {backend} grid failed")
    return time.perf_counter() - start


def markdown(result: dict) -> str:
    t = result["seconds"]
    return (f"| backend | wall time (4 cells) |\n|---|---|\n| sequential | {t['sequential']:.1f} s |\n"
            f"| ray (local, {result['cpu_count']} CPUs, 1 per cell) | {t['ray']:.1f} s |\n\n"
            f"Speed-up {t['sequential'] / t['ray']:.2f}x on {result['cpu_count']} cores.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "ray_grid_timing.json"))
    args = parser.parse_args()
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        seconds["sequential"] = grid(f"{tmp}/sequential", "sequential", args.quick)
        seconds["ray"] = grid(f"{tmp}/ray", "ray", args.quick)
    result = {"script": "analysis/ray_grid_timing.py", "commit": _common.commit(), **_common.versions(),
              "argv": sys.argv[1:], "device": "cpu", "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "seconds": seconds}
    _common.write_json(Path(args.out), result)
    print(markdown(result))


if __name__ == "__main__":
    main()
