"""Deterministic annealing of soft channel masks toward hard 0/1 masks across rounds.

Rose 1998 ("Deterministic annealing for clustering, compression, classification, regression,
and related optimization problems", Proc. IEEE 86(11), sec. II): a decision made by
minimising the free energy ``F = E[D] - T H`` at temperature T is the Gibbs distribution over
its states, which is uniform as ``T -> inf`` and collapses onto the minimum-energy state as
``T -> 0``. Here each channel has two states, keep (1) and drop (0), with energies given by
the posterior predictive probability ``p_c`` that it survives the final round:
``D(keep) = -log p_c`` and ``D(drop) = -log(1 - p_c)``. The Gibbs probability of "keep" is

    m_c(T) = p_c^(1/T) / (p_c^(1/T) + (1 - p_c)^(1/T)) = sigmoid(logit(p_c) / T),

and the soft mask is the expected gate under it, ``m_c(T)``: ``m(1) = p``, ``m -> 1/2`` as
``T -> inf``, and ``m -> 1[p > 1/2]`` as ``T -> 0`` (``p = 1/2`` stays at 1/2).

With ``anneal_target="final"`` (the default) channels the posterior predicts later rounds prune
are dimmed while the network can still adapt, so the final cut costs little; round 1 then
fine-tunes at about the final capacity. The prediction it anneals toward is chosen like a cut
(``BayesLaplace`` option ``check_prediction``, on for ``final`` and ``last``: the width check's
held-out test on the final cut's candidate widths). Measured with the checked prediction, 3 seeds,
paired against ``current``: on ResNet-20 on Fashion-MNIST (``analysis/bayes_v2.py``, commit
0a2cc99) +0.08 +- 0.09 points after fine-tuning at 50% of the MACs and -0.04 +- 0.20 at 20% (ties),
and right after the final cut 0.1 and 0.3 points under the fine-tuned accuracy where ``current``
is 0.5 and 3.6 under; on the shipped small CNN (``analysis/anneal_target_small_cnn.py``, commit
c95abd0) -0.10 +- 0.26 and +0.13 +- 0.46 (ties; before the check -0.57 and -2.27), and with the
cuts following the checked prediction (stop 39, commit e5d1a11) -0.03 +- 0.23 and -0.27 +- 0.55 (ties).

**Toward the current cut** (``anneal_target="current"``, the default before ``final``): round r's
survivors carry ``p_c^T`` with ``p_c`` the probability that c survives *round r's* budget, a
tempered (power) keep probability: ``T = 1`` gives ``p_c``, ``T -> 0`` gives 1, the current cut's
hard mask on every survivor. Channels the final round will prune are not dimmed early, so round 1
fine-tunes at its own capacity; the price is a costlier final cut (its accuracy right after is far
below the fine-tuned one).

**Toward the current cut, then the final one** (``anneal_target="last"``): every annealed round
but the last anneals toward its own cut, and the last annealed round (R-1, whose "final" is the
next cut) toward the final cut. It aims at both measurements above: round 1 fine-tunes at its own
capacity, and the final cut removes channels already dimmed (see :func:`target_of_round`). On the
small CNN with the checked prediction: -0.37 +- 0.15 at 50% and -0.07 +- 0.25 at 20% against
``current``; on ResNet-20 -0.14 +- 0.13 and -0.11 +- 0.23 (commit 0a2cc99). Before the check,
predicting with the run's loose cap, round 2 dimmed widths the later cuts would not take and the
small CNN's run collapsed at 20% (-12.73 +- 10.01).

Schedule: ``T_r = t0 * alpha^(r-1)`` for rounds r = 1..R-1 (geometric cooling, Rose 1998); the
last round's survivors are the final network, their masks are exactly 1 and
its fine-tuning is unmasked. During round r's fine-tuning the survivors of round r carry
``m_c(T_r)`` as multiplicative gates after BatchNorm; the masks are folded into the weights when
the fine-tuning ends (:func:`bayesprune.surgery.fold_gates`), so later rounds see a plain network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit


def annealed_mask(keep_probability: np.ndarray, temperature: float, eps: float = 1e-6) -> np.ndarray:
    """``sigmoid(logit(p) / T)``; ``T = 0`` gives the hard mask ``1[p > 1/2]`` (1/2 at p = 1/2)."""
    p = np.clip(np.asarray(keep_probability, dtype=np.float64), eps, 1.0 - eps)
    logit = np.log(p) - np.log1p(-p)
    if temperature <= 0.0:
        return np.where(logit > 0, 1.0, np.where(logit < 0, 0.0, 0.5))
    return expit(logit / temperature)


def tempered_mask(keep_probability: np.ndarray, temperature: float) -> np.ndarray:
    """``p^T`` for survivors of the current cut; ``T = 0`` gives their hard mask, all ones."""
    p = np.clip(np.asarray(keep_probability, dtype=np.float64), 0.0, 1.0)
    return np.ones_like(p) if temperature <= 0.0 else p ** temperature


def temperature_schedule(rounds: int, t0: float = 1.0, alpha: float = 0.5) -> list[float]:
    """``T_r`` for r = 1..R: ``t0 * alpha^(r-1)``, and 0 (hard) for the last round."""
    if t0 <= 0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"annealing needs t0 > 0 and 0 < alpha < 1, got t0={t0}, alpha={alpha}")
    return [t0 * alpha ** (r - 1) for r in range(1, rounds)] + [0.0]


ANNEAL_TARGETS = ("current", "final", "last")


@dataclass(frozen=True)
class RoundAnnealing:
    """One round's annealing: the temperature and what the masks anneal toward (current | final)."""

    temperature: float
    toward: str

    @classmethod
    def of_round(cls, anneal_target: str, round_index: int, rounds: int, t0: float = 1.0,
                 alpha: float = 0.5) -> "RoundAnnealing":
        return cls(temperature_schedule(rounds, t0, alpha)[round_index - 1],
                   target_of_round(anneal_target, round_index, rounds))


def target_of_round(anneal_target: str, round_index: int, rounds: int) -> str:
    """What round ``round_index`` (1-based, of ``rounds``) anneals toward: ``"current"`` or
    ``"final"``; ``"last"`` is ``"final"`` in the last annealed round (R-1) and ``"current"`` before."""
    if anneal_target not in ANNEAL_TARGETS:
        raise ValueError(f"unknown anneal target {anneal_target!r}; choose one of {', '.join(ANNEAL_TARGETS)}")
    if anneal_target == "last":
        return "final" if round_index == rounds - 1 else "current"
    return anneal_target
