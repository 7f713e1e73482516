"""Fault injection for the crash-safety tests (SQLite-style test hooks).

``BAYESPRUNE_KILL_AT=POINT:N`` makes the process SIGKILL itself the N-th time it passes
``POINT``: ``svi-step`` (inside SVI), ``fisher-batch`` (the gate Fisher of ``bayes``),
``finetune-step`` (inside a fine-tuning epoch) or
``atomic-write`` (a file's bytes are on disk under its temporary name, not yet renamed).
Unset (always, outside the tests), a crash point costs one comparison.
"""
from __future__ import annotations

import os
import signal

_TARGET = os.environ.get("BAYESPRUNE_KILL_AT")
_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    if _TARGET is None:
        return
    point, _, count = _TARGET.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
