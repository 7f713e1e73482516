"""The exact posterior of channel scales under a Gaussian scale mixture (GSM) prior whose
global scale is shared by all layers, for a Gaussian likelihood per channel, by quadrature.

Model (in the coordinates of a channel's *effective scale* ``z_c``; see
:class:`~bayesprune.criteria.bayes_laplace.BayesLaplace` for what the observation is)::

    tau ~ p(tau)                   one global scale for every channel of every layer
    lambda_c ~ p(lambda)           local scales
    z_c | tau, lambda_c ~ N(0, sigma^2(tau, lambda_c))        (the prior's conditional_variance)
    zhat_c | z_c ~ N(z_c, nu_c)    the likelihood, Gaussian (Laplace approximation)

Given ``(tau, lambda_c)`` everything is Gaussian and conjugate, so the scales can be integrated
out exactly on a grid: ``p(zhat_c | tau, lambda) = N(zhat_c; 0, sigma^2 + nu_c)`` and
``z_c | zhat_c, tau, lambda ~ N(sigma^2 zhat_c / (sigma^2 + nu_c), sigma^2 nu_c / (sigma^2 + nu_c))``
(the normal means model of the horseshoe, Carvalho, Polson & Scott 2010, sec. 2; van der Pas,
Kleijn & van der Vaart 2014 for ``tau`` by its marginal likelihood). The global scale couples the
channels: ``p(tau | zhat) ∝ p(tau) prod_c sum_k w_k p(zhat_c | tau, lambda_k)``.

Scales live on log-spaced grids; a node's weight is the prior density times the node's width in
``log`` (the Jacobian), normalised over the grid. Draws are exact draws from the gridded
posterior: ``tau`` from its marginal, then each ``lambda_c`` from its conditional given ``tau``,
then ``z_c`` from the Gaussian. Two sets of draws from different seeds therefore differ by Monte
Carlo error only (R-hat ~ 1 by construction); how much the posterior itself depends on the data
is measured separately (:mod:`bayesprune.bayes.agreement`).

Simplification: the grids truncate the scales to ``global_range``/``local_range``; an improper
prior (normal-Jeffreys) becomes a log-uniform prior on that range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .priors import ScalePrior


@dataclass(frozen=True)
class ScaleGrid:
    """Nodes of the global and local scales with normalised log prior weights."""

    tau: np.ndarray
    tau_log_weight: np.ndarray
    lam: np.ndarray
    lam_log_weight: np.ndarray

    @classmethod
    def for_prior(cls, prior: ScalePrior, num_global: int = 48, num_local: int = 96,
                  global_range: tuple[float, float] = (1e-4, 1e2),
                  local_range: tuple[float, float] = (1e-6, 1e6)) -> "ScaleGrid":
        if getattr(prior, "per_layer", False):
            raise ValueError("the closed-form GSM posterior has no per-layer scale; drop --per-layer-scale "
                             "or use --criterion bayes-svi")
        lam = np.geomspace(*local_range, num_local)
        lam_w = _normalised(prior.local_log_density(lam) + np.log(lam))  # + log: d lambda = lambda d log lambda
        if not prior.has_global_scale:
            return cls(np.ones(1), np.zeros(1), lam, lam_w)
        tau = np.geomspace(*global_range, num_global)
        return cls(tau, _normalised(prior.global_log_density(tau) + np.log(tau)), lam, lam_w)


def _normalised(log_weight: np.ndarray) -> np.ndarray:
    return log_weight - logsumexp(log_weight)


def _log_normal_density(x: np.ndarray, variance: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * math.pi * variance) + x ** 2 / variance)


@dataclass
class GSMPosterior:
    """``p(tau, lambda, z | zhat)`` on the grid; see the module docstring."""

    grid: ScaleGrid
    observation: np.ndarray  # (C,) zhat
    noise_variance: np.ndarray  # (C,) nu
    prior_variance: np.ndarray  # (M, K) sigma^2(tau_m, lambda_k)
    joint: np.ndarray  # (M, C, K) log p(zhat_c | tau_m, lambda_k) + log w_ck
    tau_log_posterior: np.ndarray  # (M,)

    @classmethod
    def fit(cls, observation: np.ndarray, noise_variance: np.ndarray, prior: ScalePrior, grid: ScaleGrid | None = None,
            local_log_prior: np.ndarray | None = None, tau_log_prior: np.ndarray | None = None) -> "GSMPosterior":
        """``local_log_prior`` (C, K) and ``tau_log_prior`` (M,) replace the prior's grid weights
        (e.g. a carried posterior, :meth:`carried`)."""
        grid = grid or ScaleGrid.for_prior(prior)
        observation = np.asarray(observation, dtype=np.float64)
        noise = np.asarray(noise_variance, dtype=np.float64)
        variance = prior.conditional_variance(grid.tau[:, None], grid.lam[None, :])  # (M, K)
        local = (np.broadcast_to(grid.lam_log_weight, (len(observation), len(grid.lam)))
                 if local_log_prior is None else _normalised_rows(local_log_prior))
        joint = _log_normal_density(observation[None, :, None], variance[:, None, :] + noise[None, :, None])
        joint += local[None]
        tau_prior = grid.tau_log_weight if tau_log_prior is None else _normalised(tau_log_prior)
        tau_post = _normalised(tau_prior + logsumexp(joint, axis=2).sum(1))
        return cls(grid, observation, noise, variance, joint, tau_post)

    def tau_mean(self) -> float:
        return float(np.exp(self.tau_log_posterior) @ self.grid.tau)

    def local_log_posterior(self) -> np.ndarray:
        """(C, K) ``log p(lambda_k | zhat)`` with ``tau`` integrated out."""
        conditional = self.joint - logsumexp(self.joint, axis=2, keepdims=True)
        return logsumexp(conditional + self.tau_log_posterior[:, None, None], axis=0)

    def carried(self, channels: np.ndarray, forgetting: float) -> tuple[np.ndarray, np.ndarray]:
        """The tempered posterior ``p(. | zhat)^rho`` of the scales of ``channels``, as the next
        round's prior (local (C', K) and global (M,) log weights)."""
        return forgetting * self.local_log_posterior()[channels], forgetting * self.tau_log_posterior

    def draw(self, num_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Exact draws from the gridded posterior: ``z`` (D, C), ``tau`` (D,), ``lambda`` (D, C)."""
        C, K = self.joint.shape[1:]
        m = rng.choice(len(self.grid.tau), size=num_draws, p=np.exp(self.tau_log_posterior))
        k = np.empty((num_draws, C), dtype=np.int64)
        for node in np.unique(m):
            rows = np.flatnonzero(m == node)
            conditional = np.exp(self.joint[node] - logsumexp(self.joint[node], axis=1, keepdims=True))  # (C, K)
            cumulative = np.cumsum(conditional, axis=1)
            u = rng.random((len(rows), C, 1)) * cumulative[None, :, -1:]
            k[rows] = np.minimum((cumulative[None] < u).sum(-1), K - 1)
        variance = self.prior_variance[m[:, None], k]  # (D, C)
        shrink = variance / (variance + self.noise_variance)
        mean = shrink * self.observation
        sd = np.sqrt(shrink * self.noise_variance)
        z = mean + sd * rng.standard_normal((num_draws, C))
        return {"z": z, "tau": self.grid.tau[m], "lambda": self.grid.lam[k]}


def _normalised_rows(log_weight: np.ndarray) -> np.ndarray:
    return log_weight - logsumexp(log_weight, axis=1, keepdims=True)
