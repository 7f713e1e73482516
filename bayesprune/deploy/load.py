"""The networks deploy commands read: a bayesprune checkpoint (e.g. ``RUN_DIR/model.pt``) or a
shipped id, and the base network of the run a checkpoint came from."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError


def load_deployable(name: str, trust_pickle: bool = False):
    """``(path, model, checkpoint)`` of a checkpoint file or a shipped id (its card's data set is
    recorded in the checkpoint's meta when the file does not say)."""
    from ..checkpoint import load_checkpoint
    from ..pretrained import models_dir, shipped_models

    shipped = shipped_models()
    if name.removeprefix("shipped:") in shipped and not Path(name).exists():
        info = shipped[name.removeprefix("shipped:")]
        path = models_dir() / info["file"]
        model, _arch, checkpoint = load_checkpoint(path)
        checkpoint.setdefault("meta", {}).setdefault("data", info["dataset"])
        return path, model, checkpoint
    path = Path(name)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; give a checkpoint such as RUN_DIR/model.pt or a "
                         "shipped id (bayesprune models)")
    model, _arch, checkpoint = load_checkpoint(path, trust_pickle)
    return path, model, checkpoint


def base_model_of(source: Path) -> str | None:
    """The base network of the run a checkpoint came from (its ``config.json``), if any."""
    config = Path(source).parent / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text()).get("model_source")
    except (OSError, json.JSONDecodeError):
        return None
