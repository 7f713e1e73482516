"""Resumable runs. Before round 1 and after every finished round the engine writes
``RUN_DIR/resume.pt``, one atomic file holding everything the next round starts from:

- the network (a :mod:`bayesprune.checkpoint` payload: architecture, pruning history, weights);
- the metric events so far, the channel tracker and every round's predictions;
- the criterion's cross-round state (``Criterion.state_dict``: the carried prior, generators);
- the random states: torch (CPU and CUDA), numpy, Python, and the data-order generator.

``bayesprune run --resume RUN_DIR`` reads the run's own ``config.json``, rebuilds that state and
continues with the first unfinished round; a round that was interrupted (mid-SVI, mid-epoch,
mid-write) is redone from its start. Everything that round used is restored, so on CPU a resumed
run ends with the same accuracy and the same kept channels as an uninterrupted one. The file
loads with ``torch.load(weights_only=True)``; it is removed when the run finishes.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .errors import RunDirError
from .runs import RUN_MARKER, atomic_torch_save

STATE_FILE = "resume.pt"
FORMAT, VERSION = "bayesprune-resume", 1


@dataclass
class RoundState:
    next_round: int
    checkpoint: dict  # the network entering next_round
    events: list[dict]  # metrics.jsonl so far: base, expanded, finished rounds
    alive: dict[str, list[int]]  # ChannelTracker: original indices of the surviving channels
    predictions: dict[int, tuple[list, np.ndarray]]  # round -> (channel ids, P(pruned by the end))
    criterion: dict
    rng: dict

    @property
    def base(self) -> dict:
        return _event(self.events, "base")

    @property
    def expanded(self) -> dict | None:
        return _event(self.events, "expanded")

    @property
    def rounds(self) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "event"} for e in self.events if e.get("event") == "round"]


def _event(events: list[dict], name: str) -> dict | None:
    found = next((e for e in events if e.get("event") == name), None)
    return None if found is None else {k: v for k, v in found.items() if k != "event"}


def capture_rng(generator: torch.Generator) -> dict:
    _, keys, position, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "generator": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [torch.as_tensor(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
            "python": [version, list(state), gauss]}


def restore_rng(rng: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    keys, position, has_gauss, cached = rng["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))


def save_state(path: Path, state: RoundState) -> None:
    payload = {f.name: getattr(state, f.name) for f in fields(RoundState)}
    payload["events"] = json.dumps(state.events)  # plain text: any JSON the metrics hold
    payload["predictions"] = {r: (list(ids), torch.as_tensor(np.asarray(p, dtype=np.float64)))
                              for r, (ids, p) in state.predictions.items()}
    atomic_torch_save(Path(path) / STATE_FILE, {"format": FORMAT, "version": VERSION, **payload})


def load_state(path: Path) -> RoundState:
    path = Path(path)
    if not (path / RUN_MARKER).is_file():
        raise RunDirError(f"--resume {path}: not a bayesprune run directory (no {RUN_MARKER}); "
                          "pass the --out of an interrupted `bayesprune run`")
    if (path / "summary.json").is_file() and not (path / STATE_FILE).is_file():
        raise RunDirError(f"--resume {path}: this run has finished (summary.json); nothing to resume")
    if not (path / STATE_FILE).is_file():
        raise RunDirError(f"--resume {path}: no {STATE_FILE} (the run was made by an older bayesprune or "
                          "stopped before its first state); start it again with --overwrite")
    try:
        obj = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same user-facing problem
        raise RunDirError(f"--resume {path}: {STATE_FILE} is unreadable ({str(exc).splitlines()[0][:100]}); "
                          "start the run again with --overwrite") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise RunDirError(f"--resume {path}: {STATE_FILE} is not a bayesprune {VERSION} resume state; "
                          "start the run again with --overwrite")
    obj["events"] = json.loads(obj["events"])
    obj["predictions"] = {int(r): (list(ids), p.numpy()) for r, (ids, p) in obj["predictions"].items()}
    return RoundState(**{f.name: obj[f.name] for f in fields(RoundState)})
