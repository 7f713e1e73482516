"""Convergence diagnostics of a round's posterior with arviz: R-hat and ESS of the global and
per-layer scales, and how much independent fits disagree about keep probabilities.

What a "chain" is depends on the inference, and the report says which:

- **SVI** (default): each chain is an independent SVI fit from its own seed, and its draws are
  independent draws of that fit's mean-field guide. R-hat across fits (Vehtari et al. 2021,
  "Rank-normalization, folding, and localization", sec. 3) then measures whether the
  optimisations agree, not how well a sampler mixes; within a chain the draws are independent,
  so ESS is close to the number of draws by construction.
- **NUTS**: chains are independent Markov chains; R-hat and ESS have their usual meaning.

With one chain R-hat is not defined; the table says so instead of printing a number.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# global and per-layer scale parameters of the priors, then the per-layer derived quantities
SCALE_VARIABLES = ("tau", "c2", "phi", "layer_rms_gate", "layer_surviving")


@dataclass
class Diagnostics:
    rows: list[dict]  # variable, index, mean, sd, ess_bulk, ess_tail, r_hat
    chains: int
    draws: int
    inference: str
    constant: list[str]  # variables that do not vary over draws (no diagnostics possible)
    fit_disagreement: list[dict]  # per layer: largest |P_fit_i(keep) - P_fit_j(keep)|

    @property
    def max_r_hat(self) -> float | None:
        values = [r["r_hat"] for r in self.rows if r["r_hat"] is not None]
        return max(values) if values else None


def diagnose(idata) -> Diagnostics:
    import arviz as az

    posterior = idata.posterior
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    rows, constant = [], []
    for name in SCALE_VARIABLES:
        if name not in posterior:
            continue
        values = posterior[name].values.reshape(chains, draws, -1)
        labels = _labels(posterior[name])
        for j in range(values.shape[-1]):
            series = values[..., j]
            if np.ptp(series) == 0:
                constant.append(f"{name}[{labels[j]}]" if labels[j] else name)
                continue
            with warnings.catch_warnings():  # arviz warns about one chain; we report it ourselves
                warnings.simplefilter("ignore")
                rows.append({"variable": name, "index": labels[j], "mean": float(series.mean()),
                             "sd": float(series.std(ddof=1)),
                             "ess_bulk": float(az.ess(series, method="bulk")),
                             "ess_tail": float(az.ess(series, method="tail")),
                             "r_hat": float(az.rhat(series)) if chains > 1 else None})
    return Diagnostics(rows, chains, draws, idata.posterior.attrs.get("inference", "unknown"), constant,
                       fit_disagreement(idata))


def fit_disagreement(idata) -> list[dict]:
    """Per layer, the largest difference between two chains' keep probabilities of a channel."""
    posterior = idata.posterior
    if "kept" not in posterior or posterior.sizes["chain"] < 2:
        return []
    per_chain = posterior["kept"].values.mean(axis=1)  # (chains, channels)
    spread = per_chain.max(0) - per_chain.min(0)
    layer_of_channel = _channel_layers(idata)
    rows = []
    for layer in dict.fromkeys(layer_of_channel):
        mask = np.array([name == layer for name in layer_of_channel])
        rows.append({"layer": layer, "max_difference": float(spread[mask].max()),
                     "mean_difference": float(spread[mask].mean())})
    return rows


def _channel_layers(idata) -> list[str]:
    if "constant_data" not in idata.groups() or "channel_layer" not in idata.constant_data:
        raise ValueError("the posterior file has no channel_layer; it was written by an older bayesprune, rerun")
    return [str(name) for name in idata.constant_data["channel_layer"].values]


def _labels(array) -> list[str]:
    extra = [d for d in array.dims if d not in ("chain", "draw")]
    if not extra:
        return [""]
    return [str(v) for v in array[extra[0]].values]
