"""``bayesprune latency MODEL``: measured latency of a pruned network against its base, whole and per
layer, in PyTorch and onnxruntime, at batch 1 and a larger batch (:mod:`bayesprune.deploy.timing`).

Per layer: each convolution and linear layer is timed alone on an input of the shape it sees in the
network (captured with a forward hook), so the table says where the time goes and what the cut saved
in each layer; the whole network is timed as one call. Threads are recorded (``torch.get_num_threads``
and onnxruntime's intra-op threads, set to the same number).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..training import forward_with_hooks
from .timing import Timing, time_interleaved

RUNTIMES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class LatencySettings:
    batch_sizes: tuple = (1, 64)
    runtimes: tuple = RUNTIMES
    warmup: int = 5
    repeats: int = 30
    threads: int | None = None  # None: torch's current setting


def whole_network(models: dict[str, nn.Module], image_shape: tuple, settings: LatencySettings) -> list[dict]:
    """One row per (runtime, batch size): every model's timing, interleaved."""
    threads = settings.threads or torch.get_num_threads()
    rows = []
    for runtime in settings.runtimes:
        with tempfile.TemporaryDirectory() as tmp:
            # one runner per model and runtime (an ONNX export has a dynamic batch: once is enough)
            runners = {name: _runner(model, image_shape, runtime, Path(tmp) / f"{name}.onnx", threads)
                       for name, model in models.items()}
            for batch in settings.batch_sizes:
                x = torch.randn(batch, *image_shape)
                calls = {name: (lambda run=run, x=x: run(x)) for name, run in runners.items()}
                timings = time_interleaved(calls, settings.warmup, settings.repeats)
                rows.append({"runtime": runtime, "batch": batch, "threads": threads,
                             **{name: t.to_dict() for name, t in timings.items()}})
    return rows


def _runner(model: nn.Module, image_shape: tuple, runtime: str, path: Path, threads: int):
    """``images -> logits`` in ``runtime``: the model itself, or its ONNX export in onnxruntime."""
    model.eval()
    if runtime == "torch":
        def run(x):
            with torch.no_grad():
                return model(x)
        return run
    from .runtimes import OnnxRuntime

    onnx = OnnxRuntime(threads=threads)
    onnx.write(model, torch.randn(2, *image_shape), path)
    session = onnx.load(path)
    return lambda x: session(x.numpy())


def layer_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """Each conv/linear layer (by name) with the input it sees for ``x``."""
    seen: dict[str, tuple[nn.Module, torch.Tensor]] = {}

    def record(name: str):
        def hook(module, inputs):  # returns None: the input goes on unchanged
            seen.setdefault(name, (module, inputs[0].detach().clone()))
        return hook

    forward_with_hooks(model, [(x, None)], [module.register_forward_pre_hook(record(name))
                                             for name, module in model.named_modules()
                                             if isinstance(module, (nn.Conv2d, nn.Linear))])
    return seen


def per_layer(models: dict[str, nn.Module], image_shape: tuple, batch: int, settings: LatencySettings) -> list[dict]:
    """PyTorch time of every conv/linear layer alone, for each model (layers matched by name)."""
    x = torch.randn(batch, *image_shape)
    inputs = {name: layer_inputs(model, x) for name, model in models.items()}
    layers = list(next(iter(inputs.values())))
    rows = []
    for layer in layers:
        calls = {}
        for name, seen in inputs.items():
            if layer in seen:
                module, inp = seen[layer]
                calls[name] = (lambda m=module, i=inp: _no_grad(m, i))
        timings: dict[str, Timing] = time_interleaved(calls, settings.warmup, settings.repeats)
        shapes = {name: _shape(inputs[name][layer][0]) for name in calls}
        rows.append({"layer": layer, **{name: {"shape": shapes[name], **timings[name].to_dict()} for name in calls}})
    return rows


def _no_grad(module: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        return module(x)


def _shape(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return f"{module.in_channels}->{module.out_channels} k{module.kernel_size[0]}"
    return f"{module.in_features}->{module.out_features}"
