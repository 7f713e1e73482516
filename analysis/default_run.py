"""Time the main job (`bayesprune run` with no arguments) as a user runs it, in a subprocess.

Writes analysis/results/default_run.json: wall time, the run's summary, versions and machine,
and copies the run's report to analysis/results/default_run_report/ (an example report).
Usage: python analysis/default_run.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # analysis/_common.py: scripts run from this folder have it on sys.path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round on a subset (CI smoke test)")
    parser.add_argument("--out", default=str(RESULTS / "default_run.json"))
    args = parser.parse_args()
    import torch
    import torch_pruning as tp

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "bayesprune", "run", "--quiet", "--out", f"{tmp}/run"]
        if args.quick:
            command += ["--rounds", "1", "--epochs", "0.1", "--train-subset", "256", "--test-subset", "128",
                        "--svi-steps", "10", "--posterior-draws", "20"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        summary = json.loads(Path(tmp, "run", "summary.json").read_text())
        report = Path(args.out).parent / "default_run_report"
        if not args.quick:
            shutil.rmtree(report, ignore_errors=True)
            shutil.copytree(Path(tmp, "run", "report"), report)
    result = {"command": "bayesprune run" + (" (quick)" if args.quick else ""), "wall_seconds": round(wall, 1),
              "summary": summary, "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "processor": platform.processor(), "python": platform.python_version(),
              "torch": torch.__version__, "torch_pruning": tp.__version__, "torch_threads": torch.get_num_threads(),
              "seed": 0, "commit": _common.commit()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['command']}: {wall:.1f} s wall, accuracy {summary['base']['accuracy']:.4f} -> "
          f"{summary['final']['accuracy']:.4f} at {summary['final_ratio']['macs']:.3f} of base MACs")


if __name__ == "__main__":
    main()
