"""``bayesprune latency``: parse the request, load the networks, time them, print and write."""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from .floor import floor_network, speedups
from .latency import RUNTIMES, LatencySettings, per_layer, whole_network
from .load import base_model_of, load_deployable


@dataclass(frozen=True)
class LatencyRequest:
    model: str
    base: str | None = None
    batch_sizes: str = "1,64"
    runtimes: str = "torch,onnxruntime"
    repeats: int = 30
    warmup: int = 5
    threads: int | None = None
    per_layer: bool = True
    out: str | None = None
    trust_pickle: bool = False
    floor: bool = True  # with a base: time its floor network too and give each row's quotient ceiling

    def settings(self) -> LatencySettings:
        try:
            batches = tuple(int(b) for b in self.batch_sizes.split(","))
        except ValueError:
            raise ConfigError(f"--batch-sizes must be comma-separated integers, got {self.batch_sizes!r}") from None
        runtimes = tuple(r.strip() for r in self.runtimes.split(",") if r.strip())
        unknown = [r for r in runtimes if r not in RUNTIMES]
        if unknown or not runtimes:
            raise ConfigError(f"unknown --runtimes {', '.join(map(repr, unknown)) or repr(self.runtimes)}; choose from "
                              f"{', '.join(RUNTIMES)}")
        for flag, value, low in (("--batch-sizes", min(batches), 1), ("--repeats", self.repeats, 3),
                                 ("--warmup", self.warmup, 0), ("--threads", self.threads or 1, 1)):
            if value < low:
                raise ConfigError(f"{flag} must be >= {low}, got {value}")
        return LatencySettings(batches, runtimes, self.warmup, self.repeats, self.threads)


def run_latency(request: LatencyRequest, echo=print) -> dict:
    from ..groups import count_macs_params
    from ..runs import atomic_write_json, check_writable

    settings = request.settings()
    if request.out:
        check_writable(Path(request.out).parent, "--out")
    if "onnxruntime" in settings.runtimes:
        from .runtimes import OnnxRuntime

        OnnxRuntime()  # the optional packages are there before any work
    path, model, checkpoint = load_deployable(request.model, request.trust_pickle)
    arch = checkpoint["architecture"]
    image_shape = (arch["in_channels"], arch["image_size"], arch["image_size"])
    base_name = request.base or base_model_of(path)
    models = {"pruned": model.eval()}
    if base_name:
        models = {"base": load_deployable(base_name, request.trust_pickle)[1].eval(), **models}
    if settings.threads:
        torch.set_num_threads(settings.threads)
    example = torch.randn(1, *image_shape)
    if request.floor and "base" in models:
        models["floor"] = floor_network(models["base"], example)
    counts = {name: dict(zip(("macs", "params"), count_macs_params(m, example))) for name, m in models.items()}
    rows = whole_network(models, image_shape, settings)
    if "base" in models:
        base_macs = counts["base"]["macs"]
        floor_macs = counts["floor"]["macs"] / base_macs if "floor" in counts else None
        for row in rows:
            row.update(speedups(row, counts["pruned"]["macs"] / base_macs, floor_macs))
    timed = {name: m for name, m in models.items() if name != "floor"}
    layers = per_layer(timed, image_shape, settings.batch_sizes[0], settings) if request.per_layer else []
    result = {"model": str(path), "base": base_name, "counts": counts, "whole": rows, "per_layer": layers,
              "per_layer_batch": settings.batch_sizes[0], "torch": torch.__version__,
              "processor": platform.processor() or platform.machine(), "threads": rows[0]["threads"]}
    echo(_table(result))
    if request.out:
        atomic_write_json(request.out, result)
    return result


def _table(result: dict) -> str:
    names = [n for n in result["counts"] if n != "floor"]
    floor = "floor" in result["counts"]
    lines = [f"{'runtime':<12} {'batch':>5} " + " ".join(f"{n + ' ms (IQR)':>26}" for n in names)
             + ("  speed-up  MACs speed-up  quotient" if "base" in names else "") + ("  ceiling" if floor else "")]
    for row in result["whole"]:
        cells = [f"{row[n]['median_ms']:9.3f} ({row[n]['q1_ms']:.3f}-{row[n]['q3_ms']:.3f})" for n in names]
        line = f"{row['runtime']:<12} {row['batch']:>5} " + " ".join(f"{c:>26}" for c in cells)
        if "quotient" in row:
            line += f"  {row['latency_speedup']:7.2f}x  {row['macs_speedup']:12.2f}x  {row['quotient']:8.2f}"
        if "quotient_ceiling" in row:
            line += f"  {row['quotient_ceiling']:7.2f}"
        lines.append(line)
    if floor:
        lines.append("quotient: latency speed-up / MACs speed-up; ceiling: the most a cut to these MACs could reach "
                     "here (Amdahl's law on the floor network, every group cut to one channel, timed with them)")
    if result["per_layer"]:
        lines.append(f"\nper layer, PyTorch, batch {result['per_layer_batch']} (median ms):")
        for row in result["per_layer"]:
            lines.append(f"  {row['layer']:<28} " + "  ".join(
                f"{n}: {row[n]['median_ms']:.4f} ({row[n]['shape']})" for n in names if n in row))
    lines.append(f"threads {result['threads']}, {result['processor']}, torch {result['torch']}")
    return "\n".join(lines)
