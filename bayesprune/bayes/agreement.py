"""Does a posterior agree with itself? Figures a round reports about its own decisions.

- ``r_hat_max``: the largest rank-normalised split R-hat (Vehtari et al. 2021, sec. 3, arviz
  ``rhat``) over the layer-level quantities the report shows (global scale, every layer's
  surviving count and RMS gate), across independent sets of draws ("chains");
- cross-fit calibration (the issue-16 criterion): of the channels that one set of draws gives
  keep probability < 0.05, the share the other keeps (should be < 0.05), and of those > 0.95, the
  share it keeps (should be > 0.95), averaged over both directions;
- the same calibration and the Spearman correlation of the mean cut priority between posteriors
  fitted on two disjoint halves of the calibration data (``split_half_*``): how much the posterior
  itself moves with the data, which draws from one posterior cannot show.

``passes`` says whether R-hat <= 1.05 and both cross-fit calibrations hold; ``failures`` names what
fails, with the number of channels each calibration rests on (``low_channels``, ``high_channels``).
"""
from __future__ import annotations

import warnings

import numpy as np

RHAT_LIMIT = 1.05
LOW, HIGH = 0.05, 0.95


def cross_calibration(p_a: np.ndarray, p_b: np.ndarray) -> dict[str, float | None]:
    """Mean keep probability under one fit of the channels the other calls pruned / kept."""
    def share(selected_by, other, mask_fn):
        values = [o[mask_fn(s)] for s, o in ((selected_by[0], other[0]), (selected_by[1], other[1]))]
        values = np.concatenate(values)
        return float(values.mean()) if len(values) else None

    pair, swapped = (p_a, p_b), (p_b, p_a)
    # how many channels each figure rests on (called low / high by either fit): a share of few channels
    # is mostly the draws' Monte Carlo noise
    return {"kept_of_low": share(pair, swapped, lambda p: p < LOW),
            "kept_of_high": share(pair, swapped, lambda p: p > HIGH),
            "low_channels": int(np.sum((p_a < LOW) | (p_b < LOW))),
            "high_channels": int(np.sum((p_a > HIGH) | (p_b > HIGH)))}


def r_hat_max(quantities: dict[str, np.ndarray], chains: int) -> float | None:
    """Largest R-hat over ``quantities`` (each (chains * draws, ...) chain-major); None for one chain."""
    if chains < 2:
        return None
    import arviz as az

    worst = 1.0
    for values in quantities.values():
        series = np.asarray(values, dtype=np.float64).reshape(chains, -1, *np.shape(values)[1:])
        series = series.reshape(chains, series.shape[1], -1)
        for j in range(series.shape[-1]):
            if np.ptp(series[..., j]) == 0:
                continue  # constant across draws: nothing to diagnose
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                worst = max(worst, float(az.rhat(series[..., j])))
    return worst


def summarise(r_hat: float | None, chains_calibration: dict, halves_calibration: dict,
              halves_spearman: float | None) -> dict:
    failed = failures(r_hat, chains_calibration)
    return {"r_hat_max": r_hat, "cross_fit": chains_calibration, "split_half": halves_calibration,
            "split_half_spearman": halves_spearman, "passes": not failed,
            "split_half_passes": not failures(None, halves_calibration), "failures": failed}


def failures(r_hat: float | None, calibration: dict) -> list[str]:
    """What fails of ``passes`` (R-hat <= 1.05, both calibrations; None is not measured), one phrase
    each, with the number of channels a failing calibration rests on."""
    out = [f"R-hat {r_hat:.3f} > {RHAT_LIMIT}"] if r_hat is not None and not r_hat <= RHAT_LIMIT else []
    low, high = calibration["kept_of_low"], calibration["kept_of_high"]
    if low is not None and not low < LOW:
        out.append(f"the other chain keeps {low:.3f} of the {calibration['low_channels']} channels one "
                   f"chain gives keep probability < {LOW} (should be < {LOW})")
    if high is not None and not high > HIGH:
        out.append(f"the other chain keeps {high:.3f} of the {calibration['high_channels']} channels one "
                   f"chain gives keep probability > {HIGH} (should be > {HIGH})")
    return out


def posterior_agreement(kept_draws: np.ndarray, chains: int, layer_quantities: dict[str, np.ndarray],
                        half_priorities: list[np.ndarray], half_keep: list[np.ndarray]) -> dict:
    """The figures above for one round's posterior: R-hat of ``layer_quantities`` and the cross-fit
    calibration across its ``chains`` (``kept_draws`` chain-major), and the split-half calibration
    (``half_keep``: the keep probabilities of the posteriors fitted on each half) with the Spearman
    correlation of their mean priorities (``half_priorities``: per half, (draws, channels))."""
    from scipy.stats import spearmanr

    by_chain = kept_draws.reshape(chains, -1, kept_draws.shape[1]).mean(1)
    across = cross_calibration(by_chain[0], by_chain[1]) if chains > 1 else {"kept_of_low": None,
                                                                              "kept_of_high": None}
    rho = spearmanr(half_priorities[0].mean(0), half_priorities[1].mean(0)).statistic
    return summarise(r_hat_max(layer_quantities, chains), across, cross_calibration(*half_keep),
                     None if not np.isfinite(rho) else float(rho))
