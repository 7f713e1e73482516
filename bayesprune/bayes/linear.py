"""Sparse Bayesian linear regression with a GSM prior: the hand-checkable test bed of the priors.

``y = X beta + eps``, ``eps ~ N(0, noise^2)``, ``beta_j ~ N(0, sigma_j^2)`` with ``sigma`` from a
:class:`~bayesprune.bayes.priors.ScalePrior` (Carvalho et al. 2010, sec. 2, the normal means /
regression setting). The guide is mean-field: Normal on ``beta``, the prior's own factors on the
scales. Minibatches use ``pyro.plate(subsample_size=...)``, which scales the likelihood by N/B.
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints

from .priors import ScalePrior


class SparseRegression:
    def __init__(self, prior: ScalePrior, num_features: int, noise: float = 1.0):
        self.prior = prior
        self.num_features = num_features
        self.noise = noise
        self.layer_of_feature = torch.zeros(num_features, dtype=torch.long)

    def model(self, x: torch.Tensor, y: torch.Tensor, subsample_size: int | None = None, kl_scale: float = 1.0):
        with poutine.scale(scale=kl_scale):
            sigma = self.prior.model_scales(self.layer_of_feature, 1)
            with pyro.plate("features", self.num_features):
                beta = pyro.sample("beta", dist.Normal(0.0, sigma))
        with pyro.plate("data", len(y), subsample_size=subsample_size) as idx:
            pyro.sample("obs", dist.Normal(x[idx] @ beta, self.noise), obs=y[idx])

    def guide(self, x: torch.Tensor, y: torch.Tensor, subsample_size: int | None = None, kl_scale: float = 1.0):
        with poutine.scale(scale=kl_scale):
            self.prior.guide_scales(self.num_features, 1)
            loc = pyro.param("beta_loc", lambda: torch.zeros(self.num_features))
            scale = pyro.param("beta_scale", lambda: torch.full((self.num_features,), 0.1),
                               constraint=constraints.positive)
            with pyro.plate("features", self.num_features):
                pyro.sample("beta", dist.Normal(loc, scale))
