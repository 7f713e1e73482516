"""Stochastic variational inference (Pyro SVI) with KL warm-up and divergence checks.

Models and guides here take a keyword ``kl_scale`` that multiplies the log-densities of every
latent site (``poutine.scale``) in both, so the ELBO's KL term is scaled by it: a linear warm-up
from ``kl_start`` to 1 over the first ``warmup_fraction`` of the steps (Bowman et al. 2016;
Sønderby et al. 2016) keeps the sparsity prior from switching channels off before the likelihood
has spoken. The reported ELBO trace is the negative loss at each step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.poutine.util import site_is_subsample

from ..errors import TrainingError
from ..faults import crash_point
from ..progress import progress_bar


@dataclass
class SVIConfig:
    steps: int = 300
    lr: float = 0.02
    warmup_fraction: float = 0.3
    kl_start: float = 0.01  # poutine.scale needs a positive factor
    num_particles: int = 1
    seed: int = 0

    def kl_scale(self, step: int) -> float:
        warmup = int(self.warmup_fraction * self.steps)
        if step >= warmup:
            return 1.0
        return self.kl_start + (1.0 - self.kl_start) * step / max(1, warmup)


def fit_svi(model: Callable, guide: Callable, config: SVIConfig, *args, progress: bool = False,
            desc: str = "svi", **kwargs) -> list[float]:
    """Run SVI on ``model``/``guide`` (which must accept ``kl_scale=``); return the ELBO trace.

    Raises :class:`TrainingError` when the ELBO becomes non-finite (diverged).
    """
    pyro.set_rng_seed(config.seed)
    optimizer = pyro.optim.ClippedAdam({"lr": config.lr, "clip_norm": 10.0})
    svi = SVI(model, guide, optimizer, loss=Trace_ELBO(num_particles=config.num_particles))
    trace: list[float] = []
    bar = progress_bar(range(config.steps), desc=desc, enabled=progress, leave=False, unit="step")
    for step in bar:
        crash_point("svi-step")
        try:
            loss = svi.step(*args, kl_scale=config.kl_scale(step), **kwargs)
        except ValueError as exc:  # Pyro's argument validation: a parameter left its support
            if "constraint" not in str(exc):
                raise
            loss = float("nan")
        if not math.isfinite(loss):
            bar.close()
            raise TrainingError(f"the ELBO diverged (loss {loss}) at SVI step {step} of {desc}; "
                                f"lower the SVI learning rate (--svi-lr, now {config.lr:g})")
        trace.append(-loss)
        if step % 20 == 0:
            bar.set_postfix(elbo=f"{-loss:.4g}", refresh=False)  # shown at the next update
    return trace


@torch.no_grad()
def draw_from_guide(guide: Callable, num_draws: int, *args, **kwargs) -> dict[str, torch.Tensor]:
    """``num_draws`` joint samples of every latent site of ``guide``, stacked on a leading axis."""
    draws: dict[str, list[torch.Tensor]] = {}
    for _ in range(num_draws):
        trace = pyro.poutine.trace(guide).get_trace(*args, kl_scale=1.0, **kwargs)
        for name, site in trace.nodes.items():
            if site["type"] == "sample" and not site.get("is_observed", False) and not site_is_subsample(site):
                draws.setdefault(name, []).append(site["value"].detach().cpu())
    return {name: torch.stack(values) for name, values in draws.items()}


def sample_nuts(model: Callable, num_samples: int, warmup_steps: int, seed: int = 0, progress: bool = False,
                **kwargs) -> dict[str, torch.Tensor]:
    """Posterior draws by NUTS (Hoffman & Gelman 2014) for models small enough for full-data MCMC.

    The model must not subsample (MCMC needs the exact full-data likelihood). Returns
    ``{site: (num_samples, ...)}`` like :func:`draw_from_guide`.
    """
    from pyro.infer import MCMC, NUTS

    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model, jit_compile=False), num_samples=num_samples, warmup_steps=warmup_steps,
                num_chains=1, disable_progbar=not progress)
    mcmc.run(kl_scale=1.0, **kwargs)
    samples = {name: value.detach().cpu() for name, value in mcmc.get_samples().items()}
    for name, value in samples.items():
        if not torch.isfinite(value).all():
            raise TrainingError(f"NUTS produced non-finite draws of {name}; use --inference svi")
    return samples
