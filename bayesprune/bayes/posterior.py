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
    hyper_draws: dict[str, np.ndarray]  # tau, lambda, ... (draws, ...)
    keep_probability: np.ndarray  # (channels,)
    kept_draws: np.ndarray  # (draws, channels) bool: the per-draw budgeted decisions
    decision: np.ndarray  # (channels,) bool: the kept set
    uncertain: np.ndarray  # (channels,) bool
    elbo: list[float]
    inference: str = "SVI (mean-field guide draws)"
    prune_probability: np.ndarray | None = None  # (channels,) predicted P(pruned by the final round)

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
        posterior = {"s": self.gate_draws[None]}
        posterior.update({k: v[None] for k, v in self.hyper_draws.items()})
        idata = inference_data_from(posterior, attrs={"inference": self.inference})
        with warnings.catch_warnings():  # arviz notes that svi_trace is not one of its own groups
            warnings.simplefilter("ignore")
            idata.add_groups({"svi_trace": {"elbo": np.asarray(self.elbo)[None, :]}})
        return idata

    def keep_probability_csv(self) -> str:
        stats = self.summary()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["layer", "channel", "mean", "sd", "hdi_low", "hdi_high", "keep_probability",
                         "prune_probability_final", "kept", "uncertain"])
        prune = self.prune_probability if self.prune_probability is not None else 1.0 - self.keep_probability
        for i, layer in enumerate(self.layer):
            writer.writerow([layer, int(self.channel[i]), f"{stats['mean'][i]:.6g}", f"{stats['sd'][i]:.6g}",
                             f"{stats['hdi_low'][i]:.6g}", f"{stats['hdi_high'][i]:.6g}",
                             f"{self.keep_probability[i]:.4f}", f"{prune[i]:.4f}", int(self.decision[i]),
                             int(self.uncertain[i])])
        return out.getvalue()


def inference_data_from(posterior: dict[str, np.ndarray], **kwargs):
    """``az.from_dict`` for arrays shaped (chain, draw, ...), without arviz's notice about
    adding the chain/draw dims it is given."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.from_dict(posterior=posterior, **kwargs)


def to_numpy(draws: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in draws.items()}
