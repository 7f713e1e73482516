"""Progress bars: tqdm on a terminal; in a log (stderr not a terminal) a plain line now and then.

tqdm redraws its bar with carriage returns several times a second, which a terminal overwrites
but a log file keeps: a 3-round run's log was mostly such frames. When stderr is not a terminal,
bars write one full line at most every ``LOG_INTERVAL`` seconds, and their final state.
"""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

LOG_INTERVAL = 30.0  # seconds between two lines of one bar in a log


class _Lines:
    """A stream that turns tqdm's carriage-return frames into whole lines and drops blank ones."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for frame in text.replace("\r", "\n").split("\n"):
            if frame.strip():
                self.stream.write(frame.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, *, desc: str, enabled: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable, desc=desc, disable=not enabled, **kwargs)``, sparse when stderr is not a terminal."""
    stream = sys.stderr
    if enabled and not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs = {**kwargs, "file": _Lines(stream), "mininterval": LOG_INTERVAL, "maxinterval": LOG_INTERVAL,
                  "leave": True, "dynamic_ncols": False, "ncols": 100}
    return tqdm(iterable, desc=desc, disable=not enabled, **kwargs)
