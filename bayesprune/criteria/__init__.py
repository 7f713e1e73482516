"""Criteria by name. Each is a :class:`Criterion` and a Torch-Pruning ``Importance``."""
from __future__ import annotations

from ..errors import ConfigError
from .apoz import APoZ
from .base import Calibration, Criterion
from .bayes import BayesGSM, BayesImportance
from .bayes_laplace import BayesLaplace
from .bn_scale import BatchNormScale
from .chip import CHIP
from .foad import FOAD
from .fpgm import FPGM
from .fpum import FPUM
from .hrank import HRank
from .lamp import LAMP
from .magnitude import L1Norm, L2Norm
from .obs import OptimalBrainSurgeon
from .pfam import PFAM
from .random import RandomScores
from .search_train import SearchTrain
from .sep import SEP
from .slimming import Slimming
from .taylor import Taylor
from .thinet import ThiNet
from .training_time import TrainingCriterion

CRITERIA: dict[str, type[Criterion]] = {c.name: c for c in (
    BayesLaplace, BayesGSM, L1Norm, L2Norm, RandomScores, BatchNormScale, FPGM, LAMP, APoZ, Taylor, ThiNet,
    OptimalBrainSurgeon, HRank, CHIP, Slimming, FOAD, FPUM, PFAM, SEP, SearchTrain)}


def criterion_class(name: str, flag: str = "--criterion") -> type[Criterion]:
    """The criterion class named ``name``; an unknown name is a user error naming ``flag``."""
    if name not in CRITERIA:
        raise ConfigError(f"unknown {flag} {name!r}; choose one of {', '.join(CRITERIA)} "
                          "(bayesprune criteria lists them)")
    return CRITERIA[name]


def make_criterion(name: str, seed: int = 0, config=None) -> Criterion:
    """The criterion ``name`` with the options of ``config`` (a :class:`~bayesprune.config.PruneConfig`;
    default: the defaults, with ``seed``); each criterion reads its options in ``from_config``."""
    from ..config import PruneConfig

    config = config if config is not None else PruneConfig(criterion=name, seed=seed)
    return criterion_class(name).from_config(config)


__all__ = ["BayesGSM", "BayesImportance", "BayesLaplace", "CRITERIA", "Calibration", "Criterion", "TrainingCriterion",
           "criterion_class", "make_criterion"]
