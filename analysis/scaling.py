"""Scaling of one Bayesian pass with the number of prunable channels, against fine-tuning.

For each architecture (random initialisation: time and memory do not depend on the weights'
values) one Bayesian pass = ``BayesGSM.prepare`` (``--steps`` SVI steps on minibatches of
``--batch-size`` plus the posterior draws) and, for comparison, the same number of fine-tuning
SGD steps at the same batch size. Each phase runs in its own fresh subprocess so that its peak
memory is its own: ``peak_rss_increase_mb`` = peak resident memory during the phase minus the
resident memory just before it, sampled every 2 ms (CPU); on CUDA,
``torch.cuda.max_memory_allocated`` of the phase.

Writes analysis/results/scaling.json and analysis/figures/scaling.png.
Usage: python analysis/scaling.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import commit, versions  # analysis/_common.py: the script's folder is on sys.path

HERE = Path(__file__).resolve().parent
MODELS = ("resnet20", "resnet56", "resnet110", "vgg16")  # vgg16 is VGG-16-BN


def _rss_mb() -> float:
    """Current resident memory (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS(threading.Thread):
    """Samples the resident memory every 2 ms while a phase runs; ``peak`` is its maximum."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = _rss_mb(), True

    def run(self):
        while self.running:
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.002)

    def stop(self) -> float:
        self.running = False
        self.join()
        return self.peak


def worker(model_name: str, phase: str, steps: int, batch_size: int, device: str) -> dict:
    import torch

    from bayesprune.bayes import SVIConfig
    from bayesprune.criteria.base import Calibration
    from bayesprune.criteria.bayes import BayesGSM
    from bayesprune.data import load_dataset
    from bayesprune.groups import ChannelGraph
    from bayesprune.nets import Architecture, build_model
    from bayesprune.training import FitConfig, fit

    torch.manual_seed(0)
    data = load_dataset("mnist5k").subset(steps * batch_size, 256)
    model = build_model(Architecture(model_name, 1, 10, 28)).to(device)
    graph = ChannelGraph(model, data.test_x[:1].to(device))
    channels = sum(g.size for g in graph.groups)
    before = _rss_mb()
    sampler = PeakRSS()
    sampler.start()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if phase == "bayes":
        criterion = BayesGSM(svi=SVIConfig(steps=steps), draws=50, chains=1)
        criterion.prepare(model, graph, Calibration(data, torch.device(device), batch_size))
    else:  # the same number of SGD steps of fine-tuning
        fit(model, data, FitConfig(epochs=1.0, batch_size=batch_size), torch.Generator().manual_seed(0),
            torch.device(device), progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    memory = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak - before
    return {"model": model_name, "phase": phase, "channels": channels, "seconds": seconds,
            "seconds_per_step": seconds / steps, "peak_memory_mb": memory,
            "memory_kind": "cuda max_memory_allocated" if device == "cuda" else "peak RSS increase"}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for phase, marker in (("bayes", "o"), ("finetune", "s")):
        part = sorted((r for r in rows if r["phase"] == phase), key=lambda r: r["channels"])
        label = "Bayesian pass (SVI step)" if phase == "bayes" else "fine-tune step"
        left.plot([r["channels"] for r in part], [r["seconds_per_step"] for r in part], marker + "-", label=label)
        right.plot([r["channels"] for r in part], [r["peak_memory_mb"] for r in part], marker + "-", label=label)
        for r in part:
            left.annotate(r["model"], (r["channels"], r["seconds_per_step"]), fontsize=7,
                          textcoords="offset points", xytext=(3, 3))
    left.set_xlabel("prunable channels")
    left.set_ylabel("seconds per step")
    right.set_xlabel("prunable channels")
    right.set_ylabel(rows[0]["memory_kind"] + " (MiB)")
    left.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="two small networks, 2 steps (CI smoke)")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "PHASE"), help=argparse.SUPPRESS)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.batch_size, args.device)))
        return
    if args.quick:
        args.models, args.steps, args.batch_size = "smallcnn,resnet20", 2, 16
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp()) / "quick.json" if args.quick
                                           else HERE / "results" / "scaling.json")
    rows = []
    for model in args.models.split(","):
        for phase in ("bayes", "finetune"):
            proc = subprocess.run([sys.executable, __file__, "--worker", model, phase, "--steps", str(args.steps),
                                   "--batch-size", str(args.batch_size), "--device", args.device],
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(rows[-1])
    figure = out.with_suffix(".png") if args.quick else HERE / "figures" / "scaling.png"
    plot(rows, figure)
    result = {"script": "analysis/scaling.py", "arguments": vars(args), "rows": rows, "figure": str(figure),
              "device": args.device, "commit": commit(), **versions()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} and {figure}")


if __name__ == "__main__":
    main()
