"""The contract of a Gaussian scale mixture (GSM) prior over channel gates.

Every prior here has the form ``s_c | sigma_c ~ N(0, sigma_c^2)`` with ``sigma_c`` a function of
latent scales (global, per-layer, per-channel). A prior contributes two things:

- :meth:`ScalePrior.model_scales` samples its latent scales inside the Pyro *model* and returns
  ``sigma`` (one entry per channel);
- :meth:`ScalePrior.guide_scales` samples the same sites inside the *guide* from the variational
  family: a log-normal per positive scale (Louizos et al. 2017, sec. 3.2, use log-normal
  posteriors for the half-Cauchy scales of the group horseshoe).

Site names are prefixed with ``prefix`` so several priors could coexist in one model.

The same prior also has a *quadrature form* for the closed-form posterior of
:mod:`bayesprune.bayes.gsm_quadrature`: the log densities of its global and local scales and the
conditional variance ``sigma^2(tau, lambda)`` they give a gate.
"""
from __future__ import annotations

import abc
import inspect
import math
from typing import ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from ...options import bind_options


class ScalePrior(abc.ABC):
    """A GSM prior. ``bayes`` needs its quadrature form only (:meth:`local_log_density`, and
    :meth:`global_log_density` when ``has_global_scale``); ``bayes-svi`` also needs the Pyro form
    (:meth:`model_scales`, :meth:`guide_scales`). ``global_sites``: the latent scales shared by all
    channels, whose diagnostics the report shows."""

    name: ClassVar[str]
    source: ClassVar[str]
    has_global_scale: ClassVar[bool] = True  # False: the scale is local only (normal-Jeffreys)
    global_sites: ClassVar[tuple[str, ...]] = ("tau",)

    def __init__(self, per_layer: bool = False, prefix: str = ""):
        self.per_layer = per_layer
        self.prefix = prefix

    @classmethod
    def from_config(cls, config, tau0: float) -> "ScalePrior":
        """This prior as a run's config asks for it: ``--per-layer-scale``, ``--tau0`` (``tau0``: the
        criterion's default when it is not given; priors without a global scale have none) and its
        other constructor options from ``--prior-option`` (:mod:`bayesprune.options`)."""
        reserved = ("per_layer", "prefix", "tau0")
        options = {"per_layer": config.per_layer_scale,
                   **bind_options(cls, config.prior_options, "--prior-option", reserved=reserved)}
        if "tau0" in inspect.signature(cls).parameters:
            options["tau0"] = tau0 if config.tau0 is None else config.tau0
        return cls(**options)

    def site(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def model_scales(self, layer_of_channel: torch.Tensor, num_layers: int) -> torch.Tensor:
        """Sample the latent scales (model side); return ``sigma`` of shape ``(channels,)``."""
        raise NotImplementedError(f"the {self.name} prior has no Pyro form: use it with bayes, not bayes-svi")

    def guide_scales(self, num_channels: int, num_layers: int) -> None:
        """Sample the same latent sites from the variational family (guide side)."""
        raise NotImplementedError(f"the {self.name} prior has no Pyro form: use it with bayes, not bayes-svi")

    def gate_prior(self, layer_of_channel: torch.Tensor, num_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of the conditional prior ``s_c ~ N(loc_c, scale_c^2)`` (model side).

        A GSM is centred at zero; :class:`~bayesprune.bayes.carry.CarriedPrior` is not.
        """
        sigma = self.model_scales(layer_of_channel, num_layers)
        return torch.zeros_like(sigma), sigma

    def guide_init(self, num_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial ``(loc, scale)`` of the gates' Gaussian guide: the trained network, tightly."""
        return torch.ones(num_channels), torch.full((num_channels,), 0.05)

    # quadrature form (closed-form posterior; bayesprune.bayes.gsm_quadrature) ----------------
    def global_log_density(self, tau: np.ndarray) -> np.ndarray:
        """``log p(tau)`` of the global scale (priors with ``has_global_scale``)."""
        raise NotImplementedError(f"the {self.name} prior has no global scale")

    def local_log_density(self, lam: np.ndarray) -> np.ndarray:
        """``log p(lambda)`` of a channel's local scale (up to a constant)."""
        raise NotImplementedError(f"the {self.name} prior has no quadrature form: use it with bayes-svi")

    def conditional_variance(self, tau: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``sigma^2`` of ``s_c | tau, lambda_c`` (broadcasts); the plain GSM: ``(tau lambda)^2``."""
        return (tau * lam) ** 2

    # shared pieces -------------------------------------------------------------------------
    def layer_scale(self, layer_of_channel: torch.Tensor, num_layers: int) -> torch.Tensor:
        """Optional per-layer ``phi_l ~ HalfCauchy(1)`` between the global and local scales."""
        if not self.per_layer:
            floating = layer_of_channel.is_floating_point()
            return torch.ones((), dtype=layer_of_channel.dtype if floating else torch.float32)
        with pyro.plate(self.site("layers"), num_layers):
            phi = pyro.sample(self.site("phi"), dist.HalfCauchy(torch.ones(())))
        return phi[layer_of_channel]

    def guide_layer_scale(self, num_layers: int) -> None:
        if self.per_layer:
            with pyro.plate(self.site("layers"), num_layers):
                lognormal_site(self.site("phi"), (num_layers,))


def lognormal_site(name: str, shape: tuple, init_loc: float = 0.0, init_scale: float = 0.1) -> torch.Tensor:
    """A log-normal variational factor with its own ``{name}_loc``/``{name}_scale`` parameters."""
    loc = pyro.param(f"{name}_loc", lambda: torch.full(shape, float(init_loc)))
    scale = pyro.param(f"{name}_scale", lambda: torch.full(shape, float(init_scale)), constraint=constraints.positive)
    return pyro.sample(name, dist.LogNormal(loc, scale))


def half_cauchy_log_density(x: np.ndarray, scale: float) -> np.ndarray:
    """``log C+(x; 0, scale) = log 2 - log(pi scale) - log(1 + (x / scale)^2)``."""
    x = np.asarray(x, dtype=np.float64)
    return math.log(2.0 / (math.pi * scale)) - np.log1p((x / scale) ** 2)
