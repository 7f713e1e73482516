"""The Pyro model of channel gates on a trained network, and its mean-field guide.

Model (one global prior over all layers, so sparsity is shared: global group sparsity):

    sigma = prior scales (e.g. horseshoe: tau * lambda_c)
    s_c ~ N(0, sigma_c^2)                         for every channel c of every group
    y_i | x_i, s ~ Categorical(softmax(f(x_i; W, s)))   for the N training examples

``f`` is the network with gates ``s`` (see :mod:`.gates`), in eval mode (BatchNorm uses its
running statistics, so a gate scales its channel linearly). Minibatches of B examples are drawn
by ``pyro.plate("data", N, subsample_size=B)``, which scales the log-likelihood by N/B.

Weights ``W``: by default they stay at their trained values, the point estimate of a network
trained with weight decay (a MAP under a Gaussian prior). ``train_weights=True`` registers them
with ``pyro.module`` so SVI updates them jointly (MAP). Off by default because a gate and the
BatchNorm scale before it are not separately identifiable: with both free, the prior's shrinkage
of ``s`` is undone by growing gamma.

Guide: ``s_c ~ N(m_c, v_c^2)`` initialised by the prior's ``guide_init`` (``m = 1``: the trained
network), and the prior's log-normal factors on its scales. The prior supplies ``(loc, scale)``
of ``s`` through ``gate_prior``: zero-centred for a GSM, the previous round's tempered posterior
for :class:`~bayesprune.bayes.carry.CarriedPrior`.
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from torch import nn

from ..data import ImageData
from ..gates import ChannelGates
from .priors import ScalePrior


class GatedNetworkModel:
    def __init__(self, net: nn.Module, gates: ChannelGates, prior: ScalePrior, data: ImageData,
                 device: torch.device, batch_size: int | None = 128, train_weights: bool = False):
        self.net, self.gates, self.prior, self.data = net, gates, prior, data
        self.device, self.batch_size, self.train_weights = device, batch_size, train_weights
        self.num_layers = len(gates.graph.groups)

    def model(self, kl_scale: float = 1.0) -> None:
        C = self.gates.num_channels
        with poutine.scale(scale=kl_scale):
            loc, scale = self.prior.gate_prior(self.gates.layer_of_channel, self.num_layers)
            with pyro.plate("gates", C):
                s = pyro.sample("s", dist.Normal(loc, scale))
        if self.train_weights:
            pyro.module("net", self.net)
        self.gates.values = s.to(self.device)
        N = len(self.data.train_y)
        batch = None if self.batch_size is None else min(self.batch_size, N)  # None: full data (NUTS)
        with pyro.plate("data", N, subsample_size=batch) as idx:
            logits = self.net(self.data.train_x[idx].to(self.device)).cpu()
            pyro.sample("obs", dist.Categorical(logits=logits), obs=self.data.train_y[idx])

    def guide(self, kl_scale: float = 1.0) -> None:
        C = self.gates.num_channels
        with poutine.scale(scale=kl_scale):
            self.prior.guide_scales(C, self.num_layers)
            init_loc, init_scale = self.prior.guide_init(C)
            loc = pyro.param("s_loc", lambda: init_loc)
            scale = pyro.param("s_scale", lambda: init_scale, constraint=constraints.positive)
            with pyro.plate("gates", C):
                pyro.sample("s", dist.Normal(loc, scale))
