"""Posterior summaries per channel and per layer, as arviz ``InferenceData`` and tables."""
from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ChannelPosterior:
    """Posterior draws of the gates and the decision built on them (one row per channel)."""

    layer: list[str]  # group name of each channel
    channel: np.ndarray  # index within its group
    gate_draws: np.ndarray  # (draws, channels)
    hyper_draws: dict[str, np.ndarray]  # tau, lambda, ... (draws, ...); draws are chain-major
    keep_probability: np.ndarray  # (channels,)
    kept_draws: np.ndarray  # (draws, channels) bool: the per-draw budgeted decisions
    decision: np.ndarray  # (channels,) bool: the kept set
    uncertain: np.ndarray  # (channels,) bool
    elbo: list[list[float]]  # one trace per chain (empty lists for NUTS)
    inference: str = "SVI (mean-field guide draws)"
    prune_probability: np.ndarray | None = None  # (channels,) predicted P(pruned by the final round)
    chains: int = 1  # independent fits; the draws are their concatenation, chain-major

    def keep_probability_interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``level`` interval of each keep probability given the draws: the
        Jeffreys Beta(k + 1/2, n - k + 1/2) posterior for k kept in n draws (Brown, Cai &
        DasGupta 2001, sec. 4.1.2). It is the Monte-Carlo uncertainty of the estimate; more
        draws (``--posterior-draws``) narrow it."""
        from scipy.stats import beta

        n = self.kept_draws.shape[0]
        k = self.kept_draws.sum(0)
        tail = (1 - level) / 2
        return beta.ppf(tail, k + 0.5, n - k + 0.5), beta.ppf(1 - tail, k + 0.5, n - k + 0.5)

    def by_chain(self, draws: np.ndarray) -> np.ndarray:
        """(chains * draws, ...) -> (chains, draws, ...)."""
        return draws.reshape(self.chains, -1, *draws.shape[1:])

    def layer_quantities(self) -> dict[str, np.ndarray]:
        """Per-draw, per-layer summaries for convergence diagnostics, each (draws, layers):
        ``layer_rms_gate`` = sqrt(mean_c s_c^2) over the layer's channels (the layer's effective
        scale; a derived quantity, so it exists for every prior) and ``layer_surviving`` = the
        layer's channels kept by that draw's budgeted decision."""
        layers = np.array(self.layer)
        names = list(dict.fromkeys(self.layer))
        rms = np.stack([np.sqrt((self.gate_draws[:, layers == n] ** 2).mean(1)) for n in names], 1)
        surviving = np.stack([self.kept_draws[:, layers == n].sum(1) for n in names], 1).astype(float)
        return {"layer_rms_gate": rms, "layer_surviving": surviving}

    def summary(self, hdi_prob: float = 0.9) -> dict[str, np.ndarray]:
        import arviz as az

        hdi = az.hdi(inference_data_from({"s": self.gate_draws[None]}), hdi_prob=hdi_prob)["s"].values
        return {"mean": self.gate_draws.mean(0), "sd": self.gate_draws.std(0, ddof=1),
                "hdi_low": hdi[:, 0], "hdi_high": hdi[:, 1], "keep_probability": self.keep_probability}

    def per_layer(self, hdi_prob: float = 0.9) -> list[dict]:
        """Expected surviving channels per layer with a central ``hdi_prob`` interval over draws."""
        rows, layers = [], np.array(self.layer)
        tail = (1 - hdi_prob) / 2
        for name in dict.fromkeys(self.layer):
            survivors = self.kept_draws[:, layers == name].sum(1)
            rows.append({"layer": name, "channels": int((layers == name).sum()),
                         "expected_surviving": float(survivors.mean()),
                         "interval_low": float(np.quantile(survivors, tail)),
                         "interval_high": float(np.quantile(survivors, 1 - tail)),
                         "kept": int(self.decision[layers == name].sum())})
        return rows

    def inference_data(self):
        """Gates ``s``, the prior's scales and the per-layer quantities of :meth:`layer_quantities`
        as (chain, draw, ...) arrays; ELBO traces (chain, step) in the ``svi_trace`` group."""
        posterior = {"s": self.gate_draws}
        posterior.update(self.hyper_draws)
        posterior.update(self.layer_quantities())
        posterior["kept"] = self.kept_draws.astype(np.int8)  # each draw's budgeted decision
        posterior = {k: self.by_chain(v) for k, v in posterior.items()}
        layer_dims = {"layer_rms_gate": ["layer"], "layer_surviving": ["layer"], "s": ["channel"],
                      "kept": ["channel"]}
        coords = {"layer": list(dict.fromkeys(self.layer)), "channel": np.arange(len(self.layer))}
        # which layer each channel belongs to (constant data, so the file stands on its own)
        idata = inference_data_from(posterior, dims={**layer_dims, "channel_layer": ["channel"]}, coords=coords,
                                    constant_data={"channel_layer": np.array(self.layer)})
        idata.posterior.attrs.update({"inference": self.inference, "chains": self.chains})
        if any(len(trace) for trace in self.elbo):
            with warnings.catch_warnings():  # arviz notes that svi_trace is not one of its own groups
                warnings.simplefilter("ignore")
                idata.add_groups({"svi_trace": {"elbo": np.asarray(self.elbo, dtype=float)}})
        return idata

    def keep_probability_csv(self) -> str:
        stats = self.summary()
        out = io.StringIO()
        writer = csv.writer(out)
        low, high = self.keep_probability_interval()
        writer.writerow(["layer", "channel", "mean", "sd", "hdi_low", "hdi_high", "keep_probability",
                         "keep_probability_low", "keep_probability_high", "prune_probability_final",
                         "kept", "uncertain"])
        prune = self.prune_probability if self.prune_probability is not None else 1.0 - self.keep_probability
        for i, layer in enumerate(self.layer):
            writer.writerow([layer, int(self.channel[i]), f"{stats['mean'][i]:.6g}", f"{stats['sd'][i]:.6g}",
                             f"{stats['hdi_low'][i]:.6g}", f"{stats['hdi_high'][i]:.6g}",
                             f"{self.keep_probability[i]:.4f}", f"{low[i]:.4f}", f"{high[i]:.4f}",
                             f"{prune[i]:.4f}", int(self.decision[i]),
                             int(self.uncertain[i])])
        return out.getvalue()


def hdi_contains(samples: np.ndarray, level: float, hdi_prob: float = 0.9) -> np.ndarray:
    """Per column of ``samples`` (draws, channels): does its ``hdi_prob`` HDI contain ``level``?"""
    import arviz as az

    hdi = az.hdi(inference_data_from({"x": samples[None]}), hdi_prob=hdi_prob)["x"].values
    return (hdi[:, 0] <= level) & (level <= hdi[:, 1])


def write_round_artifacts(posterior: "ChannelPosterior | None", directory, round_index: int) -> list[str]:
    """A round's posterior as arviz netCDF and its keep-probability table; the file names written."""
    from pathlib import Path

    from ..runs import atomic_path, atomic_write_text

    if posterior is None:
        return []
    netcdf = f"posterior_round{round_index}.nc"
    with atomic_path(Path(directory) / netcdf) as tmp:
        posterior.inference_data().to_netcdf(str(tmp))
    table = f"keep_probability_round{round_index}.csv"
    atomic_write_text(Path(directory) / table, posterior.keep_probability_csv())
    return [netcdf, table]


def inference_data_from(posterior: dict[str, np.ndarray], **kwargs):
    """``az.from_dict`` for arrays shaped (chain, draw, ...), without arviz's notice about
    adding the chain/draw dims it is given."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.from_dict(posterior=posterior, **kwargs)


def to_numpy(draws: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in draws.items()}
