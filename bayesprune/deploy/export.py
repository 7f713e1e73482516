"""``bayesprune export MODEL --format onnx | torchscript``: a plain model file that runs without
bayesprune, checked against PyTorch, with a card beside it.

ONNX goes through ``torch.onnx.export`` (the dynamo exporter, batch size dynamic), is checked with
``onnx.checker`` and run with onnxruntime; TorchScript is traced and reloaded with ``torch.jit.load``.
Either way the exported model's outputs are compared with PyTorch's on test images at two batch
sizes (the largest absolute difference must stay below ``tolerance``) and its accuracy is measured
on the whole test set with the exported runtime. The card (``<file>.json``) says what a caller must
feed it: input shape and normalisation, the classes, accuracy, MACs, params, the base model and the
run it came from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import BayesPruneError, ConfigError, RunDirError
from ..runs import atomic_path, atomic_write_json
from .load import base_model_of, load_deployable

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


class ExportError(BayesPruneError):
    """The exported model cannot be made or does not compute what the PyTorch model computes."""


@dataclass(frozen=True)
class ExportRequest:
    model: str  # a bayesprune checkpoint (e.g. RUN_DIR/model.pt) or a shipped id
    format: str = "onnx"
    out: str | None = None  # default: beside the checkpoint, e.g. RUN_DIR/model.onnx
    data: str | None = None  # default: the data set the checkpoint records
    data_dir: str | None = None
    trust_pickle: bool = False
    check_images: int = 256
    tolerance: float = 1e-4

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"unknown --format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.check_images < 2:
            raise ConfigError(f"--check-images must be >= 2, got {self.check_images}")


def export(request: ExportRequest, echo=lambda _s: None, data=None) -> dict:
    """Write the exported model and its card; return the card. ``data``: an
    :class:`~bayesprune.data.ImageData` to check on instead of the one ``request`` names."""
    from ..data import load_dataset
    from ..groups import count_macs_params

    request.validate()
    source, model, checkpoint = load_deployable(request.model, request.trust_pickle)
    meta = checkpoint.get("meta", {})
    data_name = request.data or meta.get("data") or (data.name if data is not None else None)
    if data_name is None:
        raise ConfigError(f"{request.model} does not record its data set; pass --data")
    out = Path(request.out) if request.out else _default_out(source, request.format)
    if out.is_dir():
        raise RunDirError(f"--out {out} is a directory; give the exported file's path")
    from ..runs import check_writable

    check_writable(out.parent, "--out")
    runtime = _runtime(request.format)  # the optional packages are there before any work
    data = data if data is not None else load_dataset(data_name, request.data_dir)
    if (data.in_channels, data.image_size) != (model_input := _input_of(checkpoint)):
        raise ConfigError(f"{source} takes {model_input[0]}-channel {model_input[1]}x{model_input[1]} images but "
                          f"{data.name} has {data.in_channels}-channel {data.image_size}x{data.image_size}; pass "
                          "the --data it was trained on")
    model.eval()
    macs, params = count_macs_params(model, data.test_x[:1])
    created = not out.parent.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:
            runtime.write(model, data.test_x[:2], tmp)
            run = runtime.load(tmp)
            difference = _max_difference(model, run, data.test_x[:request.check_images])
            if not difference <= request.tolerance:
                raise ExportError(f"the {request.format} model differs from PyTorch by up to {difference:.2e} "
                                  f"(> {request.tolerance:g}) on test images; please report this model")
            accuracy = _accuracy(run, data.test_x, data.test_y)
    except BaseException:
        if created and not any(out.parent.iterdir()):
            out.parent.rmdir()
        raise
    card = {"file": out.name, "format": request.format, "runtime": runtime.describe(),
            "input": {"shape": ["batch", data.in_channels, data.image_size, data.image_size], "dtype": "float32",
                      "normalisation": data.normalisation,
                      "how": "x = (pixels / scale - mean[c]) / std[c] per channel c, NCHW"},
            "num_classes": data.num_classes, "output": "logits (batch, num_classes)", "data": data.name,
            "test_accuracy": accuracy, "test_images": len(data.test_y), "macs": macs, "params": params,
            "max_abs_difference_vs_pytorch": difference, "checked_images": request.check_images,
            "max_abs_logit": float(model(data.test_x[:request.check_images]).detach().abs().max()),
            "base_model": base_model_of(source), "source": str(source),
            "pruning_steps": len(checkpoint.get("pruning_history") or []), "checkpoint_meta": meta}
    atomic_write_json(out.with_name(out.name + ".json"), card)
    echo(f"{request.format}: {out} (card {out.name}.json); max |difference| vs PyTorch {difference:.2e} on "
         f"{request.check_images} test images; test accuracy {100 * accuracy:.2f}% with {runtime.describe()}")
    return card


def _input_of(checkpoint: dict) -> tuple[int, int]:
    arch = checkpoint["architecture"]
    return arch["in_channels"], arch["image_size"]


def _default_out(source: Path, format: str) -> Path:
    folder = source.parent if source.parent.name != "models" else Path(".")
    return folder / (source.name.removesuffix(".pt") + FORMATS[format])


@torch.no_grad()
def _max_difference(model, run, images: torch.Tensor) -> float:
    """Largest |exported - PyTorch| over the logits, at the full batch and at batch 1."""
    expected = model(images).numpy()
    whole = np.abs(run(images.numpy()) - expected).max()
    single = max(np.abs(run(images[i:i + 1].numpy()) - expected[i:i + 1]).max() for i in range(min(4, len(images))))
    return float(max(whole, single))


def _accuracy(run, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    correct = 0
    for start in range(0, len(y), batch_size):
        predicted = run(x[start:start + batch_size].numpy()).argmax(1)
        correct += int((predicted == y[start:start + batch_size].numpy()).sum())
    return correct / max(1, len(y))


def _runtime(format: str):
    from .runtimes import OnnxRuntime, TorchScriptRuntime

    return OnnxRuntime() if format == "onnx" else TorchScriptRuntime()
