"""Criteria by name. Each is a :class:`Criterion` and a Torch-Pruning ``Importance``."""
from __future__ import annotations

from ..errors import BayesPruneError
from .base import Criterion
from .bn_scale import BatchNormScale
from .magnitude import L1Norm, L2Norm
from .random import RandomScores

CRITERIA: dict[str, type[Criterion]] = {c.name: c for c in (L1Norm, L2Norm, RandomScores, BatchNormScale)}


def make_criterion(name: str, seed: int = 0) -> Criterion:
    if name not in CRITERIA:
        raise BayesPruneError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)} "
                              "(bayesprune criteria lists them)")
    cls = CRITERIA[name]
    return cls(seed=seed) if cls is RandomScores else cls()


__all__ = ["CRITERIA", "Criterion", "make_criterion"]
