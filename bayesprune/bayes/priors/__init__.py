"""Gaussian scale mixture priors over channel gates, by name."""
from __future__ import annotations

from ...errors import ConfigError
from .base import ScalePrior
from .horseshoe import Horseshoe
from .normal_jeffreys import NormalJeffreys
from .regularized_horseshoe import RegularizedHorseshoe

PRIORS: dict[str, type[ScalePrior]] = {p.name: p for p in (Horseshoe, RegularizedHorseshoe, NormalJeffreys)}


def prior_class(name: str) -> type[ScalePrior]:
    if name not in PRIORS:
        raise ConfigError(f"unknown prior {name!r}; choose one of {', '.join(PRIORS)}")
    return PRIORS[name]


def make_prior(name: str, per_layer: bool = False, **kwargs) -> ScalePrior:
    return prior_class(name)(per_layer=per_layer, **kwargs)


__all__ = ["PRIORS", "ScalePrior", "make_prior", "prior_class"]
