"""Wall-clock timing that can be compared: warm-up calls, then the candidates called in turn
(interleaved, so that a slow spell of the machine hits them alike), median and quartiles of the
calls. ``timer`` is injectable (tests pass a fake clock)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Timing:
    median_ms: float
    q1_ms: float
    q3_ms: float
    calls: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.median_ms:.3f} ms [IQR {self.q1_ms:.3f}-{self.q3_ms:.3f}]"


def time_interleaved(calls: dict[str, Callable[[], object]], warmup: int = 5, repeats: int = 30,
                     timer: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Median and quartiles (ms) of ``repeats`` calls of each function, after ``warmup`` calls each;
    round r calls them in an order rotated by r."""
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = timer()
            calls[name]()
            seconds[name].append(timer() - start)
    out = {}
    for name, values in seconds.items():
        q1, median, q3 = np.quantile(np.asarray(values) * 1e3, [0.25, 0.5, 0.75])
        out[name] = Timing(float(median), float(q1), float(q3), len(values))
    return out
