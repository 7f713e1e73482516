"""The regularized ("Finnish") horseshoe: a horseshoe whose tails are softly truncated by a slab."""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from .base import lognormal_site
from .horseshoe import Horseshoe


class RegularizedHorseshoe(Horseshoe):
    """Piironen & Vehtari 2017, EJS, eq. (2.8): ``c^2 ~ InvGamma(nu/2, nu slab^2/2)``,
    ``lambda~_c^2 = c^2 lambda_c^2 / (c^2 + tau^2 lambda_c^2)``, ``s_c ~ N(0, tau^2 lambda~_c^2)``.

    Params:
        tau0: scale of the half-Cauchy on the global ``tau``.
        slab_scale, slab_df: scale and degrees of freedom of the slab (large gates are
            regularised like a Student-t(slab_df) with this scale instead of left unbounded).
        per_layer: optional per-layer half-Cauchy scale, as in :class:`Horseshoe`.

    Quadrature form (closed-form posterior): the slab's ``c`` is held at ``slab_scale`` (the
    inverse-gamma's scale) instead of integrated over; ``tau`` and ``lambda`` are integrated, under
    the horseshoe's half-Cauchy densities (inherited).
    """

    name = "regularized-horseshoe"
    global_sites = ("tau", "c2")
    source = "Piironen & Vehtari 2017, Electron. J. Statist., eq. 2.8"

    def __init__(self, tau0: float = 1e-1, slab_scale: float = 2.0, slab_df: float = 4.0,
                 per_layer: bool = False, prefix: str = ""):
        super().__init__(tau0, per_layer, prefix)
        self.slab_scale, self.slab_df = float(slab_scale), float(slab_df)

    def model_scales(self, layer_of_channel, num_layers):
        tau = pyro.sample(self.site("tau"), dist.HalfCauchy(torch.tensor(self.tau0)))
        half_df = torch.tensor(self.slab_df / 2)
        c2 = pyro.sample(self.site("c2"), dist.InverseGamma(half_df, half_df * self.slab_scale ** 2))
        phi = self.layer_scale(layer_of_channel, num_layers)
        with pyro.plate(self.site("channels"), len(layer_of_channel)):
            lam = pyro.sample(self.site("lambda"), dist.HalfCauchy(torch.ones(())))
        local = (tau * phi * lam) ** 2
        return torch.sqrt(c2 * local / (c2 + local))

    def guide_scales(self, num_channels, num_layers):
        lognormal_site(self.site("tau"), (), init_loc=math.log(self.tau0))
        lognormal_site(self.site("c2"), (), init_loc=math.log(self.slab_scale ** 2))
        self.guide_layer_scale(num_layers)
        with pyro.plate(self.site("channels"), num_channels):
            lognormal_site(self.site("lambda"), (num_channels,), init_loc=math.log(1.0 / self.tau0))

    def conditional_variance(self, tau, lam):
        local = (tau * lam) ** 2
        c2 = self.slab_scale ** 2
        return c2 * local / (c2 + local)
