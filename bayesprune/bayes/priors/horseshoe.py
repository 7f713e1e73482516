"""The (group) horseshoe prior with one global scale shared by all layers."""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from .base import ScalePrior, half_cauchy_log_density, lognormal_site


class Horseshoe(ScalePrior):
    """Carvalho, Polson & Scott 2010, eq. (1); group form of Louizos et al. 2017, eq. (8):
    ``tau ~ C+(0, tau0)``, ``lambda_c ~ C+(0, 1)``, ``s_c ~ N(0, (tau * phi_l * lambda_c)^2)``.

    Params:
        tau0: scale of the half-Cauchy on the single global ``tau`` (global group sparsity).
        per_layer: add ``phi_l ~ C+(0, 1)`` per layer between global and local scales.
    """

    name = "horseshoe"
    source = "Carvalho et al. 2010, Biometrika, eq. 1; Louizos et al. 2017, NeurIPS, eq. 8"

    def __init__(self, tau0: float = 1e-1, per_layer: bool = False, prefix: str = ""):
        super().__init__(per_layer, prefix)
        self.tau0 = float(tau0)

    def model_scales(self, layer_of_channel, num_layers):
        tau = pyro.sample(self.site("tau"), dist.HalfCauchy(torch.tensor(self.tau0)))
        phi = self.layer_scale(layer_of_channel, num_layers)
        with pyro.plate(self.site("channels"), len(layer_of_channel)):
            lam = pyro.sample(self.site("lambda"), dist.HalfCauchy(torch.ones(())))
        return tau * phi * lam

    def guide_scales(self, num_channels, num_layers):
        lognormal_site(self.site("tau"), (), init_loc=math.log(self.tau0))
        self.guide_layer_scale(num_layers)
        with pyro.plate(self.site("channels"), num_channels):
            lognormal_site(self.site("lambda"), (num_channels,), init_loc=math.log(1.0 / self.tau0))

    def global_log_density(self, tau):
        return half_cauchy_log_density(tau, self.tau0)

    def local_log_density(self, lam):
        return half_cauchy_log_density(lam, 1.0)
