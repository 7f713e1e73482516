"""Checkpoints without pickle: an architecture spec, a state dict and torch-pruning's history.

Format ``bayesprune-checkpoint`` v1, a dict loadable with ``torch.load(weights_only=True)``:

- ``architecture``: ``{"name", "in_channels", "num_classes", "image_size"}`` (see :mod:`bayesprune.nets`);
- ``pruning_history``: torch-pruning's ``DependencyGraph.pruning_history()`` list of
  ``[module_name, is_out_channel_pruning, indices]``, replayed on a fresh network to rebuild the
  pruned shapes (empty for an unpruned network);
- ``state_dict``: the weights of the (pruned) network;
- ``meta``: JSON-like facts (data set, accuracy, MACs, ...).
"""
from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import ModelError
from .nets import Architecture, build_model
from .runs import atomic_torch_save

FORMAT = "bayesprune-checkpoint"
VERSION = 1


def checkpoint_payload(model: nn.Module, arch: Architecture, pruning_history: list | None = None,
                       meta: dict | None = None) -> dict:
    return {
        "format": FORMAT, "version": VERSION, "architecture": arch.to_dict(),
        "pruning_history": [[str(n), bool(o), [int(i) for i in idx]] for n, o, idx in (pruning_history or [])],
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }


def save_checkpoint(path: str | Path, model: nn.Module, arch: Architecture,
                    pruning_history: list | None = None, meta: dict | None = None) -> None:
    atomic_torch_save(path, checkpoint_payload(model, arch, pruning_history, meta))


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict:
    """Load the raw checkpoint dict safely (``weights_only=True`` unless the user trusts the file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; check the path")
    if trust_pickle:
        warnings.warn(f"loading {path} with full pickle: only do this for files you created")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
            raise ModelError(f"{path} is not a readable checkpoint (corrupted or not a torch file); "
                             "restore it from its source") from exc
        raise ModelError(f"{path} holds objects other than tensors and plain data; it is not a "
                         "bayesprune checkpoint (re-save it as a state dict, or pass --trust-pickle "
                         "if you created it)") from exc
    except Exception as exc:  # torch.load's errors on a damaged file vary (EOFError, IndexError, ...)
        raise ModelError(f"{path} is not a readable checkpoint (corrupted or truncated: "
                         f"{str(exc).splitlines()[0][:120]}); restore it from its source") from exc
    return obj


def load_checkpoint(path: str | Path, trust_pickle: bool = False) -> tuple[nn.Module, Architecture, dict]:
    """Rebuild the network stored at ``path``: returns ``(model, architecture, checkpoint)``."""
    obj = read_checkpoint(path, trust_pickle)
    model, arch = model_from_payload(obj, str(path))
    return model, arch, obj


def model_from_payload(obj, path: str) -> tuple[nn.Module, Architecture]:
    """The network described by a checkpoint dict (see :func:`checkpoint_payload`)."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelError(f"{path} is not a bayesprune checkpoint; for a plain state dict pass "
                         "--model ARCH --weights FILE")
    if obj.get("version") != VERSION:
        raise ModelError(f"{path} has checkpoint version {obj.get('version')}, this bayesprune reads "
                         f"{VERSION}; upgrade bayesprune")
    arch = Architecture(**obj["architecture"])
    model = build_model(arch)
    if obj["pruning_history"]:
        from .groups import replay_pruning_history

        replay_pruning_history(model, arch, obj["pruning_history"])
    load_weights(model, obj["state_dict"], path, arch.name)
    return model, arch


def load_weights(model: nn.Module, state_dict: dict, source: str, arch_name: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error for a checkpoint of another network."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        detail = str(exc).split("\n")[1].strip() if "\n" in str(exc) else str(exc)
        raise ModelError(f"{source} does not fit architecture {arch_name} ({detail[:160]}); "
                         "pass the --model it was trained with") from exc
