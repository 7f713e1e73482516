"""What every benchmark records beside its numbers: the code's commit and the library versions."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def commit() -> str | None:
    """The git commit the numbers come from (with ``+dirty`` for uncommitted changes to the code:
    a benchmark that resumes or runs beside another rewrites result files, which are not code)."""
    try:
        run = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, check=True,  # noqa: E731
                                        cwd=REPO).stdout.strip()
        head = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":!analysis/results", ":!analysis/figures")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def versions() -> dict:
    import torch
    import torch_pruning as tp

    return {"python": platform.python_version(), "torch": torch.__version__, "torch_pruning": tp.__version__,
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}


def write_json(path: Path, result: dict) -> None:
    """Write a result file whole or not at all (a benchmark rewrites it after every cell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def paired_accuracy(cells: list[dict], reference: dict, scale: float = 1.0) -> dict:
    """Mean and sd over seeds of the cells' ``accuracy`` and of its paired difference to ``reference``
    (seed -> the reference method's accuracy on that seed), times ``scale``; sd 0 for one seed."""
    import statistics

    def mean_sd(values):
        values = [scale * v for v in values]
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    accuracy, paired = mean_sd([c["accuracy"] for c in cells]), mean_sd([c["accuracy"] - reference[c["seed"]]
                                                                          for c in cells])
    return {"accuracy_mean": accuracy[0], "accuracy_sd": accuracy[1], "paired_mean": paired[0], "paired_sd": paired[1]}
