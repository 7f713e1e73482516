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
from .pfam import PFAM
from .random import RandomScores
from .search_train import SearchTrain
from .sep import SEP
from .slimming import Slimming
from .taylor import Taylor
from .thinet import ThiNet
from .training_time import TrainingCriterion

CRITERIA: dict[str, type[Criterion]] = {c.name: c for c in (
    BayesLaplace, BayesGSM, L1Norm, L2Norm, RandomScores, BatchNormScale, FPGM, LAMP, APoZ, Taylor, ThiNet, HRank, CHIP,
    Slimming, FOAD, FPUM, PFAM, SEP, SearchTrain)}
SEEDED = (RandomScores, CHIP, ThiNet, Slimming)  # criteria that draw random numbers


def make_criterion(name: str, seed: int = 0, **options) -> Criterion:
    """Build a criterion by name; ``options`` go to criteria that take them (``bayes``, ``bayes-svi``)."""
    if name not in CRITERIA:
        raise ConfigError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)} "
                              "(bayesprune criteria lists them)")
    cls = CRITERIA[name]
    if cls is BayesLaplace:
        from ..bayes.priors import make_prior

        prior_name, tau0, within = options.pop("prior"), options.pop("tau0"), options.pop("within")
        if within in (name, "bayes-svi") or CRITERIA.get(within, cls).trains:
            raise ConfigError(f"--within {within!r} cannot order channels inside a layer; use a scoring "
                                  "criterion such as l2, l1, fpgm or taylor")
        prior = make_prior(prior_name, per_layer=options.pop("per_layer"),
                           **({} if prior_name == "normal-jeffreys" else {"tau0": tau0}))
        return cls(prior=prior, within=make_criterion(within, seed), seed=seed, **options)
    if cls is BayesGSM:
        return cls(seed=seed, **options)
    return cls(seed=seed) if cls in SEEDED or issubclass(cls, TrainingCriterion) else cls()


__all__ = ["BayesGSM", "BayesImportance", "BayesLaplace", "CRITERIA", "Calibration", "Criterion", "TrainingCriterion",
           "make_criterion"]
