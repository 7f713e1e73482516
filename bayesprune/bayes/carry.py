"""Sequential Bayesian updating across pruning rounds: round t's posterior is round t+1's prior.

After round t the mean-field posterior of a surviving channel's gate is ``N(m_c, v_c^2)``. Its
posterior mean is then folded into the network's weights (:mod:`bayesprune.surgery.fold`), so in
round t+1 the gate multiplies a channel that already carries ``m_c``: in these *relative*
coordinates the carried posterior is ``N(1, (v_c / |m_c|)^2)``. When nothing is folded
(``--reparameterize none``) it stays ``N(m_c, v_c^2)`` in the gate's own units.

The same training data are seen again in round t+1, and the network has been cut and fine-tuned
in between, so the carried posterior is **tempered** by a forgetting factor ``rho`` in (0, 1]
(a power prior, Ibrahim & Chen 2000, sec. 2: ``p_{t+1}(s) ∝ q_t(s)^rho``). For a Gaussian
``q^rho`` is ``N(m, v^2 / rho)``: ``rho = 1`` carries the full evidence, small ``rho`` lets round
t+1's likelihood overrule it. ``rho = 0`` means "do not carry": every round refits the GSM prior.

The carried prior has no latent scales (``tau``, ``lambda``): the horseshoe's shrinkage is already
part of ``q_t``. Relative scales are capped at ``max_relative_scale`` so a channel whose mean is
close to zero (kept only because the budget needed it) stays a well-defined, vague prior.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .priors.base import ScalePrior


class CarriedPrior(ScalePrior):
    """The tempered previous posterior ``s_c ~ N(1, (v_c / |m_c|)^2 / rho)`` of the survivors
    (Ibrahim & Chen 2000, power prior, sec. 2; sequential Bayes in relative coordinates).

    Params:
        relative_scale: ``v_c / |m_c|`` per surviving channel, in the current network's channel order.
        rho: forgetting factor in (0, 1].
    """

    name = "carried"
    source = "Ibrahim & Chen 2000, Statistical Science, sec. 2 (power prior)"
    max_relative_scale = 10.0

    def __init__(self, relative_scale: np.ndarray | torch.Tensor, rho: float, loc: np.ndarray | None = None):
        super().__init__(per_layer=False)
        if not 0.0 < rho <= 1.0:
            raise ValueError(f"forgetting factor rho must be in (0, 1], got {rho}")
        relative = torch.as_tensor(np.asarray(relative_scale, dtype=np.float32))
        self.rho = float(rho)
        # loc = 1 in relative coordinates (the mean was folded into the weights); otherwise the
        # previous posterior mean itself, with the scale in the same absolute units
        self.loc = torch.ones_like(relative) if loc is None else torch.as_tensor(np.asarray(loc, dtype=np.float32))
        unit = self.loc.abs().clamp_min(1e-6)
        self.scale = (relative / unit).clamp(1e-4, self.max_relative_scale) * unit / math.sqrt(self.rho)

    @classmethod
    def from_posterior(cls, loc: np.ndarray, scale: np.ndarray, rho: float, folded: bool = True) -> "CarriedPrior":
        """From the previous round's Gaussian posterior (``loc``, ``scale``) of the survivors;
        ``folded``: whether ``loc`` was folded into the weights (then the prior is relative)."""
        loc, scale = np.asarray(loc), np.asarray(scale)
        if folded:
            return cls(scale / np.maximum(np.abs(loc), 1e-6), rho)
        return cls(scale, rho, loc=loc)

    def state_dict(self) -> dict:
        return {"loc": self.loc.clone(), "scale": self.scale.clone(), "rho": self.rho}

    @classmethod
    def from_state_dict(cls, state: dict) -> "CarriedPrior":
        prior = cls(torch.ones_like(state["loc"]), state["rho"], loc=state["loc"])
        prior.scale = state["scale"].clone()  # exactly as saved (no re-tempering)
        return prior

    def _check(self, num_channels: int) -> None:
        if num_channels != len(self.scale):
            raise ValueError(f"carried prior holds {len(self.scale)} channels, the network has {num_channels}")

    def model_scales(self, layer_of_channel, num_layers):
        self._check(len(layer_of_channel))
        return self.scale

    def gate_prior(self, layer_of_channel, num_layers):
        self._check(len(layer_of_channel))
        return self.loc, self.scale

    def guide_scales(self, num_channels, num_layers):
        """No latent scales: the carried prior is a fixed Gaussian."""

    def guide_init(self, num_channels):
        self._check(num_channels)
        return self.loc.clone(), torch.minimum(self.scale, 0.5 * self.loc.abs()).clamp_min(1e-3)
