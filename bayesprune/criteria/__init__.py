"""Criteria by name. Each is a :class:`Criterion` and a Torch-Pruning ``Importance``."""
from __future__ import annotations

from ..errors import BayesPruneError
from .base import Calibration, Criterion
from .bayes import BayesGSM, BayesImportance
from .bn_scale import BatchNormScale
from .magnitude import L1Norm, L2Norm
from .random import RandomScores

CRITERIA: dict[str, type[Criterion]] = {c.name: c for c in (BayesGSM, L1Norm, L2Norm, RandomScores, BatchNormScale)}


def make_criterion(name: str, seed: int = 0, **options) -> Criterion:
    """Build a criterion by name; ``options`` go to criteria that take them (``bayes``)."""
    if name not in CRITERIA:
        raise BayesPruneError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)} "
                              "(bayesprune criteria lists them)")
    cls = CRITERIA[name]
    if cls is BayesGSM:
        return cls(seed=seed, **options)
    return cls(seed=seed) if cls is RandomScores else cls()


__all__ = ["BayesGSM", "BayesImportance", "CRITERIA", "Calibration", "Criterion", "make_criterion"]
