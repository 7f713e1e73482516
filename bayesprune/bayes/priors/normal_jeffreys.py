"""The normal-Jeffreys (log-uniform scale) prior of Bayesian Compression."""
from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from .base import ScalePrior, lognormal_site


class NormalJeffreys(ScalePrior):
    """Louizos et al. 2017, NeurIPS, eq. (5)-(6): ``p(z_c) ∝ 1/z_c``, ``s_c ~ N(0, z_c^2)``.

    The Jeffreys prior is improper and scale-free, so it has no global scale: sparsity comes from
    its pole at zero. It is implemented as an improper flat site plus the factor ``-log z_c``; the
    ELBO is then defined up to an additive constant, which does not affect inference.

    Params:
        per_layer: optional per-layer half-Cauchy scale, as in :class:`Horseshoe`.

    Quadrature form (closed-form posterior): ``z_c`` is the local scale; the improper density is
    made proper by the finite grid of scales the quadrature integrates over (a log-uniform prior
    truncated to that range, see :mod:`bayesprune.bayes.gsm_quadrature`).
    """

    name = "normal-jeffreys"
    global_sites = ()
    has_global_scale = False
    source = "Louizos et al. 2017, NeurIPS, eq. 5-6 (log-uniform / normal-Jeffreys)"

    def model_scales(self, layer_of_channel, num_layers):
        phi = self.layer_scale(layer_of_channel, num_layers)
        n = len(layer_of_channel)
        with pyro.plate(self.site("channels"), n):
            z = pyro.sample(self.site("z"), dist.ImproperUniform(constraints.positive, (), ()))
            pyro.factor(self.site("jeffreys"), -torch.log(z))
        return phi * z

    def guide_scales(self, num_channels, num_layers):
        self.guide_layer_scale(num_layers)
        with pyro.plate(self.site("channels"), num_channels):
            lognormal_site(self.site("z"), (num_channels,), init_loc=0.0)

    def local_log_density(self, lam):
        return -np.log(np.asarray(lam, dtype=np.float64))
