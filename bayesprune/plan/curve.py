"""The posterior-predictive budget curve: for each budget, the cut of every posterior draw (and the
decision) of the closed-form posterior (:class:`~bayesprune.criteria.bayes_laplace.BayesLaplace`),
the accuracy it loses right after the cut on held-out images (paired with the base network on the
same images), and the layer widths the draws leave."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..decision.selector import BudgetedSelector
from ..errors import BudgetError
from ..progress import progress_bar
from ..masked_cuts import MaskedCuts


@dataclass(frozen=True)
class HeldOut:
    """Images no statistic of the posterior saw: the accuracy of every cut is measured on them."""

    x: torch.Tensor
    y: torch.Tensor
    device: torch.device
    # whether the base network was trained on them (its card or checkpoint records how many of the
    # first training images it saw); None: not recorded. Seen images bias the paired loss: a network
    # fits them better than new ones, and a cut first loses what was fit to them alone
    seen_by_base: bool | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class BudgetPrediction:
    """What the posterior predicts for one budget (fraction of the base MACs or params)."""

    fraction: float
    reachable: bool
    decision_fraction: float | None = None  # the decision's cost, as a fraction of the base (cost model)
    decision_accuracy: float | None = None  # the decision's cut: what `run` would cut at this budget
    draw_accuracy: list | None = None  # the evaluated draws' cuts
    widths: dict | None = None  # layer -> {size, decision, mean, low, high} surviving channels
    kept: np.ndarray | None = None  # the decision's kept flags (not written out)
    decision_loss: float | None = None  # base accuracy minus the decision's, on the same held-out images
    draw_loss: list | None = None  # the same for each evaluated draw
    draw_discordance: list | None = None  # per draw: share of held-out images the cut and the base disagree on


def predictive_interval(draw_accuracy, images: int, level: float, seed: int = 0,
                        samples_per_draw: int = 2000) -> tuple[float, float]:
    """Central ``level`` interval of the accuracy of a cut, over the posterior's uncertainty about
    which channels go (the draws) and the sampling error of measuring each on ``images`` images:
    the equal mixture over draws of the Jeffreys posterior ``Beta(c + 1/2, n - c + 1/2)`` of each
    draw's accuracy, ``c`` of its ``n`` held-out images right (Brown, Cai & DasGupta 2001, sec. 4.1.2)."""
    rng = np.random.default_rng(seed)
    correct = np.round(np.asarray(draw_accuracy, dtype=np.float64) * images)
    samples = rng.beta(correct[:, None] + 0.5, images - correct[:, None] + 0.5, (len(correct), samples_per_draw))
    tail = (1.0 - level) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def discordance_floor(seen_by_base: bool | None, new_image_accuracy: float | None) -> float:
    """The least share of new images on which a cut is taken to disagree with the base network, when
    its held-out images cannot show it: ``1 - new_image_accuracy`` (the base's error on images it
    never saw: its card's test accuracy, or ``--base-accuracy``) unless the held-out images are new
    to it (``seen_by_base`` False: their discordance is measured where it will hold), else 0.

    Why: on images it was trained on, a network is right with wide margins (the small CNN: 99.95%),
    so a cut flips few of them; on new images it errs on ``1 - accuracy`` of them at narrow margins,
    and a cut flips those both ways, gains and losses cancelling in the mean loss but not in its
    variance. A heuristic, not a derivation: ``analysis/plan_calibration.py`` measured it (the
    shipped small CNN's 90% interval held the test accuracy 6 times of 27 without it, 24 with it)."""
    if seen_by_base is False or new_image_accuracy is None:
        return 0.0
    return float(min(max(1.0 - new_image_accuracy, 0.0), 1.0))


def loss_interval(draw_loss, draw_discordance, images: int, level: float, test_images: int | None = None,
                  seed: int = 0, samples_per_draw: int = 2000, floor: float = 0.0) -> tuple[float, float]:
    """Central ``level`` interval of the accuracy a cut loses against the base network, over the
    posterior's uncertainty about which channels go (the draws) and the sampling error of the paired
    comparison on ``images`` held-out images (and, with ``test_images``, of measuring the loss again
    on that many new images): the equal mixture over draws of normals with mean the draw's loss and
    variance ``v (1/images + 1/test_images)``, ``v = q - loss^2`` the per-image variance of a paired
    difference of proportions with discordance rate ``q`` (Agresti 2013, *Categorical Data
    Analysis*, sec. 11.1.1; ``q`` with half a pseudo-count, so that identical cuts keep some width,
    and at least ``floor``: :func:`discordance_floor`). Paired, the base's own sampling error cancels:
    a network that fits its training images better than new ones shifts both alike."""
    rng = np.random.default_rng(seed)
    loss = np.asarray(draw_loss, dtype=np.float64)
    discordance = np.maximum((np.asarray(draw_discordance, dtype=np.float64) * images + 0.5) / (images + 1), floor)
    variance = np.maximum(discordance - loss ** 2, 0.0) * (1.0 / images + (1.0 / test_images if test_images else 0.0))
    samples = rng.normal(loss[:, None], np.sqrt(variance)[:, None], (len(loss), samples_per_draw))
    tail = (1.0 - level) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def paired_loss(base_correct: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """Accuracy lost against the base on the same images, and the share of images they disagree on."""
    return float(base_correct.mean() - correct.mean()), float((base_correct != correct).mean())


def evaluated_draws(total: int, count: int) -> np.ndarray:
    """``count`` draw indices spread evenly over ``total`` (chains are stacked, so each is sampled)."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))


def layer_widths(names: list[str], group_of_channel: np.ndarray, kept_draws: np.ndarray, decision: np.ndarray,
                 interval: float) -> dict:
    """Per layer: channels, the decision's survivors and the draws' mean and central interval."""
    tail = (1.0 - interval) / 2
    out = {}
    for g, name in enumerate(names):
        members = group_of_channel == g
        counts = kept_draws[:, members].sum(1)
        out[name] = {"size": int(members.sum()), "decision": int(decision[members].sum()),
                     "mean": float(counts.mean()), "low": float(np.quantile(counts, tail)),
                     "high": float(np.quantile(counts, 1 - tail))}
    return out


@dataclass
class BudgetCurve:
    """Everything one point of the curve needs: the prepared posterior (``criterion``), the network's
    cost model and base cost in ``kind``, the per-layer cap, the masked cuts and the held-out images."""

    criterion: object  # a prepared BayesLaplace
    cost_model: object
    base_cost: float
    kind: str
    max_fraction: float
    masked: MaskedCuts
    held_out: HeldOut
    names: list
    interval: float
    draws: np.ndarray  # indices of the evaluated posterior draws
    base_correct: np.ndarray  # which held-out images the base network classifies right

    def predict(self, fraction: float) -> BudgetPrediction:
        """One point of the curve; an unreachable budget (the per-layer caps) is recorded as such."""
        criterion, cost_model, held = self.criterion, self.cost_model, self.held_out
        try:
            selector = BudgetedSelector(cost_model, criterion.group_of_channel, fraction * self.base_cost, self.kind,
                                        self.max_fraction)
        except BudgetError:
            return BudgetPrediction(fraction, reachable=False)
        cuts = criterion.posterior_cuts(selector)
        kept_count = np.bincount(criterion.group_of_channel[cuts.decision], minlength=len(cost_model.sizes))
        decision = self.masked.per_image(cuts.decision, held.x, held.y, held.device)[0]
        draws = [self.masked.per_image(cuts.kept_draws[d], held.x, held.y, held.device)[0] for d in self.draws]
        losses = [paired_loss(self.base_correct, correct) for correct in draws]
        return BudgetPrediction(
            fraction, True, float(cost_model.cost(kept_count, self.kind) / self.base_cost), float(decision.mean()),
            [float(correct.mean()) for correct in draws],
            layer_widths(self.names, criterion.group_of_channel, cuts.kept_draws, cuts.decision, self.interval),
            cuts.decision, paired_loss(self.base_correct, decision)[0], [loss for loss, _ in losses],
            [discordance for _, discordance in losses])

    def predict_all(self, fractions, progress: bool = True) -> list[BudgetPrediction]:
        return [self.predict(f) for f in progress_bar(fractions, desc="plan: budgets", enabled=progress)]
