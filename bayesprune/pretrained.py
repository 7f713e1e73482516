"""Shipped base networks (``models/``) and resolution of ``--model`` to a network.

Each shipped network is ``models/<id>.pt`` (a bayesprune checkpoint) with ``<id>.json``
(facts + sha256, read by code) and ``<id>.md`` (its model card, for people), all three written
by ``bayesprune train --out models/<id>.pt``.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint, load_weights, read_checkpoint
from .data import ImageData
from .errors import DataError, ModelError
from .nets import Architecture, build_model


def models_dir() -> Path:
    """``$BAYESPRUNE_MODELS_DIR`` or the ``models/`` folder of the source checkout."""
    return Path(os.environ.get("BAYESPRUNE_MODELS_DIR", Path(__file__).resolve().parent.parent / "models"))


def shipped_models() -> dict[str, dict]:
    directory = models_dir()
    if not directory.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ResolvedModel:
    model: nn.Module
    arch: Architecture
    source: str  # what was loaded, for config.json
    pretrained: bool
    pruning_history: list
    # how many of the data set's first training images the network was trained on (its card or
    # checkpoint says so); None: not recorded, so any training image may have been seen
    train_images: int | None = None


def resolve_model(name: str, data: ImageData, weights: str | None = None, trust_pickle: bool = False) -> ResolvedModel:
    """``name`` is a checkpoint path, a shipped id, or an architecture (random init unless ``weights``)."""
    shipped = shipped_models()
    if name.endswith(".pt") or Path(name).is_file():
        model, arch, ckpt = load_checkpoint(name, trust_pickle)
        resolved = ResolvedModel(model, arch, str(name), True, ckpt["pruning_history"],
                                 _train_images(ckpt.get("meta") or {}))
    elif name in shipped:
        info = shipped[name]
        path = models_dir() / info["file"]
        if not path.is_file():
            raise ModelError(f"shipped model {name}: {path} is missing; restore models/ from the repository")
        if sha256_of(path) != info["sha256"]:
            raise ModelError(f"shipped model {name}: {path} does not match its recorded sha256 "
                             "(corrupted); restore it from the repository")
        model, arch, ckpt = load_checkpoint(path)
        resolved = ResolvedModel(model, arch, f"shipped:{name}", True, ckpt["pruning_history"], _train_images(info))
        if info["dataset"] != data.name:
            warnings.warn(f"{name} was trained on {info['dataset']}, not {data.name}: its accuracy "
                          "there is meaningless until fine-tuned")
    else:
        arch = Architecture(name, data.in_channels, data.num_classes, data.image_size)
        model = build_model(arch)
        if weights:
            state = read_checkpoint(weights, trust_pickle)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            if not isinstance(state, dict):
                raise ModelError(f"{weights} does not hold a state dict; save model.state_dict()")
            load_weights(model, state, weights, name)
        else:
            warnings.warn(f"model {name} has random weights (no --weights); pruning an untrained "
                          "network only makes sense for tests")
        resolved = ResolvedModel(model, arch, name if not weights else f"{name}+{weights}", bool(weights), [])
    check_compatible(resolved, data)
    return resolved


def _train_images(facts: dict) -> int | None:
    value = facts.get("train_images")
    return int(value) if isinstance(value, int) and value > 0 else None


def check_compatible(resolved: ResolvedModel, data: ImageData) -> None:
    arch = resolved.arch
    if arch.in_channels != data.in_channels:
        raise DataError(f"model {arch.name} takes {arch.in_channels}-channel images but {data.name} has "
                        f"{data.in_channels}; pick a model trained on {data.name} or an architecture name")
    if arch.num_classes != data.num_classes:
        raise DataError(f"model {arch.name} predicts {arch.num_classes} classes but {data.name} has "
                        f"{data.num_classes}; pick a model trained on {data.name}")
    sample = data.test_x[:2]
    try:
        with torch.no_grad():
            resolved.model.eval()
            out = resolved.model(sample)
    except RuntimeError as exc:
        raise DataError(f"model {arch.name} cannot take {data.name}'s {data.in_channels}x{data.image_size}x"
                        f"{data.image_size} images ({str(exc).splitlines()[0][:100]}); choose a model "
                        "built for this image size") from exc
    if out.shape != (len(sample), data.num_classes):
        raise DataError(f"model {arch.name} returns shape {tuple(out.shape)} for {data.name}; expected "
                        f"(batch, {data.num_classes})")
