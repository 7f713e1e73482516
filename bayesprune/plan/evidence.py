"""Bayesian model reduction (BMR) of channels: how the log evidence changes when a channel's prior is
shrunk to a spike at zero, in closed form from the posterior, with no threshold to tune.

Friston & Penny 2011 (Post hoc Bayesian model selection, NeuroImage 56:2089), sec. "Bayesian model
reduction", Gaussian case: for a full prior ``N(0, sigma^2)``, its posterior ``N(mu, s^2)`` and a
reduced prior ``N(0, sigma_r^2)``, with precisions ``pi = 1/sigma^2``, ``pi_r = 1/sigma_r^2``,
``p = 1/s^2`` and the reduced posterior's ``p_r = p + pi_r - pi``, ``mu_r = p mu / p_r``::

    dF = ln p(y | reduced) - ln p(y | full) = 1/2 ln(p pi_r / (p_r pi)) - 1/2 (p mu^2 - p_r mu_r^2)

(:func:`gaussian_reduction`). As ``sigma_r -> 0`` (the channel removed: its scale a spike at zero)
this is the Savage-Dickey ratio ``ln q(0) - ln p(0)`` (:func:`spike_reduction`). BMRS (Wright et al.,
NeurIPS 2024) prunes a structure exactly when this is positive: the data are explained at least as
well without it, and the smaller model is preferred for being smaller.

In :mod:`bayesprune.bayes.gsm_quadrature` the prior of a channel's effective scale is a Gaussian
*scale mixture*; given its scales ``(tau, lambda)`` it is Gaussian and the reduction above is exact
per node. Mixed over the nodes, the evidence change of removing channel c is
``ln N(zhat_c; 0, nu_c) - ln p(zhat_c | zhat_-c)``: the likelihood with ``z_c = 0`` against the full
model's predictive density of the channel's observation, with ``tau`` at its posterior given the
other channels and ``lambda_c`` integrated (:func:`channel_log_evidence_change`).

Simplifications: a set of channels is scored by the sum of their changes (exact for a fixed ``tau``,
which the hundreds of other channels pin down); the likelihood is the diagonal Laplace one of the
posterior, so channels removed together do not interact here (the cut's order does price that).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..bayes.gsm_quadrature import GSMPosterior
from ..decision.cost import CostModel


def gaussian_reduction(mean, variance, prior_variance, reduced_variance):
    """``dF`` of shrinking a zero-mean Gaussian prior's variance to ``reduced_variance`` (Friston &
    Penny 2011, Gaussian case), from the full posterior ``N(mean, variance)``."""
    p, pi, pi_r = 1.0 / np.asarray(variance), 1.0 / np.asarray(prior_variance), 1.0 / np.asarray(reduced_variance)
    p_r = p + pi_r - pi
    mu_r = p * np.asarray(mean) / p_r
    return 0.5 * np.log(p * pi_r / (p_r * pi)) - 0.5 * (p * np.asarray(mean) ** 2 - p_r * mu_r ** 2)


def spike_reduction(mean, variance, prior_variance):
    """``dF`` of a spike at zero: the Savage-Dickey ratio ``ln q(0) - ln p(0)`` of Gaussians."""
    mean, variance, prior_variance = map(np.asarray, (mean, variance, prior_variance))
    return 0.5 * np.log(prior_variance / variance) - mean ** 2 / (2 * variance)


def channel_log_evidence_change(posterior: GSMPosterior) -> np.ndarray:
    """Per channel, ``dF_c`` of removing it (positive: the evidence prefers the network without it)."""
    per_tau = logsumexp(posterior.joint, axis=2)  # (M, C): ln p(zhat_c | tau_m), lambda_c integrated
    others = posterior.tau_log_posterior[:, None] - per_tau  # ln p(tau | zhat_-c), unnormalised
    others -= logsumexp(others, axis=0, keepdims=True)
    full = logsumexp(others + per_tau, axis=0)
    nu = posterior.noise_variance
    reduced = -0.5 * (np.log(2 * math.pi * nu) + posterior.observation ** 2 / nu)
    return reduced - full


@dataclass(frozen=True)
class EvidenceCurve:
    """The evidence of the nested reduced networks along one removal order: after removing its first
    m channels, the network costs ``fractions[m]`` of the base and ``log_evidence_change[m]`` nats
    more (or less) evidence than the full one. ``best`` is the m with the highest evidence."""

    fractions: np.ndarray
    log_evidence_change: np.ndarray
    best: int

    @property
    def chosen_fraction(self) -> float:
        """The budget at which the reduced network's evidence stops improving."""
        return float(self.fractions[self.best])

    def at(self, fraction: float) -> float:
        """The evidence change of the largest prefix that meets ``fraction`` of the base cost."""
        meets = np.flatnonzero(self.fractions <= fraction + 1e-12)
        return float(self.log_evidence_change[meets[0]]) if len(meets) else float("nan")


def evidence_curve(removal_order: np.ndarray, change: np.ndarray, cost_model: CostModel,
                   group_of_channel: np.ndarray, kind: str, base_cost: float) -> EvidenceCurve:
    """Cumulative ``change`` along ``removal_order`` (every prefix is a reduced network) with each
    prefix's cost; ties in evidence go to the smaller network."""
    sizes = cost_model.sizes
    removed = np.zeros((len(removal_order) + 1, len(sizes)), dtype=np.int64)
    np.add.at(removed, (np.arange(1, len(removal_order) + 1), group_of_channel[removal_order]), 1)
    removed = np.cumsum(removed, axis=0)
    fractions = cost_model.cost(sizes - removed, kind) / base_cost
    total = np.concatenate([[0.0], np.cumsum(change[removal_order])])
    best = int(np.flatnonzero(total >= total.max() - 1e-9)[-1])
    return EvidenceCurve(fractions, total, best)
