"""Criteria by name. Each is a :class:`Criterion` and a Torch-Pruning ``Importance``."""
from __future__ import annotations

from ..errors import BayesPruneError
from .apoz import APoZ
from .base import Calibration, Criterion
from .bayes import BayesGSM, BayesImportance
from .bn_scale import BatchNormScale
from .chip import CHIP
from .foad import FOAD
from .fpgm import FPGM
from .fpum import FPUM
from .hrank import HRank
from .lamp import LAMP
from .magnitude import L1Norm, L2Norm
from .pfam import PFAM
from .random import RandomScores
from .search_train import SearchTrain
from .sep import SEP
from .slimming import Slimming
from .taylor import Taylor
from .thinet import ThiNet
from .training_time import TrainingCriterion

CRITERIA: dict[str, type[Criterion]] = {c.name: c for c in (
    BayesGSM, L1Norm, L2Norm, RandomScores, BatchNormScale, FPGM, LAMP, APoZ, Taylor, ThiNet, HRank, CHIP,
    Slimming, FOAD, FPUM, PFAM, SEP, SearchTrain)}
SEEDED = (RandomScores, CHIP, ThiNet, Slimming)  # criteria that draw random numbers


def make_criterion(name: str, seed: int = 0, **options) -> Criterion:
    """Build a criterion by name; ``options`` go to criteria that take them (``bayes``)."""
    if name not in CRITERIA:
        raise BayesPruneError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)} "
                              "(bayesprune criteria lists them)")
    cls = CRITERIA[name]
    if cls is BayesGSM:
        return cls(seed=seed, **options)
    return cls(seed=seed) if cls in SEEDED or issubclass(cls, TrainingCriterion) else cls()


__all__ = ["BayesGSM", "BayesImportance", "CRITERIA", "Calibration", "Criterion", "TrainingCriterion",
           "make_criterion"]
