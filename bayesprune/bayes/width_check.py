"""A held-out check of the layer widths the Laplace posterior chooses.

The posterior prices a cut with a quadratic model of the log-likelihood around the trained network
(MacKay 1992's Laplace approximation; :mod:`bayesprune.fisher`). That model is local: it was
measured to extrapolate badly when most channels of several layers go at once. One cut of the
shipped ResNet-20 to 20% of its MACs, no fine-tuning, ``lsq``: the posterior's own widths (inner
convolutions cut to 2-6 of 16 channels) kept 19% accuracy where uniform widths kept 53%; the same
posterior with at most 65% of any layer removed kept 60% (``analysis/README.md``).

The check is model criticism in the sense of Box 1980 / Gelman et al.'s posterior predictive
checks, applied to the one decision the quadratic model is least trusted with: the cut is made at
the run's cap (``--max-prune-fraction``), at each tighter cap of :attr:`WidthCheck.caps` (at most
that share of any layer removed in this cut; each a trust radius around the trained network) and
with uniform widths (the limit: every layer loses the same share, in the posterior's order), every
candidate's decision is applied as masks with the run's reparameterization
(:class:`~bayesprune.masked_cuts.MaskedCuts`) and scored by its log-likelihood on training images
the posterior's statistics did not read. The candidate with the highest mean is cut if it beats the
run's own cap by more than ``z`` standard errors of the paired per-image difference; otherwise the
run's cap stands (a difference inside the sampling noise of the held-out images is a tie, and on
a tie the posterior's own widths are kept). With ``keep_chosen_rule`` the rule an earlier cut chose
stands on a tie instead (hysteresis): without fine-tuning between the cuts the network the next
posterior is centred on is no trained optimum, and the quadratic model an earlier check distrusted
is not made more trustworthy by another cut. The posterior and
its ordering are unchanged; only how far from the trained network the cut may go is chosen by the
data. With ``adapt_batchnorm`` each candidate's BatchNorm statistics are re-estimated on the
calibration batches before it is scored (Li et al. 2020's adaptive BatchNorm,
:mod:`bayesprune.batchnorm_adaptation`): a run that fine-tunes re-estimates them in its first steps,
and a cut judged with the unpruned network's statistics is judged by damage fine-tuning repairs
first. Simplification: the held-out images may have been seen in training (the base network's, and
earlier rounds' fine-tuning), so the scores are optimistic alike for every candidate.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..decision.budget import RoundBudget
from ..errors import BudgetError
from ..masked_cuts import MaskedCuts

CAPS = (0.75, 0.6, 0.45, 0.3)  # tighter caps tried beside the run's own (fractions of a layer per cut)
HELD_OUT_IMAGES = 1000
Z = 2.0  # standard errors by which a tighter cap must beat the run's own


@dataclass(frozen=True)
class HeldOutImages:
    """The last ``count`` training images, and whether they overlap the calibration batches (a small
    training split leaves no others; recorded, never hidden)."""

    x: torch.Tensor
    y: torch.Tensor
    overlaps_calibration: bool

    @classmethod
    def of(cls, calibration, count: int = HELD_OUT_IMAGES) -> "HeldOutImages":
        train = len(calibration.data.train_y)
        read = min(train, calibration.batch_size * calibration.num_batches)  # the calibration's first images
        beside = train - read
        take = min(count, beside) if beside >= min(count, 100) else min(count, train)
        return cls(calibration.data.train_x[train - take:], calibration.data.train_y[train - take:],
                   overlaps_calibration=take > beside)


@dataclass
class WidthCheck:
    """Chooses among cuts of one posterior at several caps by held-out log-likelihood (see module)."""

    reparameterize: str = "mean"
    caps: tuple = CAPS
    images: int = HELD_OUT_IMAGES
    seed: int = 0
    z: float = Z
    adapt_batchnorm: bool = False
    keep_chosen_rule: bool = False
    standing_rule: str = "run"  # the candidate kept on a tie; with keep_chosen_rule the last cut's choice
    _masked: MaskedCuts | None = field(default=None, repr=False)
    _held_out: HeldOutImages | None = field(default=None, repr=False)
    _device: torch.device | None = field(default=None, repr=False)

    def prepare(self, model, inputs: torch.Tensor, calibration, scales: torch.Tensor | None = None,
                statistics=None) -> None:
        """Snapshot this round's network (before its cut) and pick the held-out images; the criterion
        calls it only for a cut it checks. ``statistics``: the network's input statistics (as folded
        with ``scales``) if the criterion gathered them already (:class:`MaskedCuts`)."""
        self._masked = MaskedCuts(model, inputs, calibration, self.reparameterize, scales, self.seed, statistics,
                                  self.adapt_batchnorm)
        self._held_out = HeldOutImages.of(calibration, self.images)
        self._device = calibration.device

    def candidates(self, budget) -> list[tuple[str, object]]:
        """The cut's budget at each cap of :attr:`caps` below the run's own, loosest first, then with
        uniform widths (the trust region's limit: every layer loses the same share), as
        ``(label, RoundBudget)``; the run's own budget is not among them."""
        tighter = [(f"cap {c:g}", replace(budget, max_fraction=c)) for c in self.caps if c < budget.max_fraction - 1e-9]
        return tighter + [("uniform", replace(budget, allocation="uniform"))]

    def choose(self, candidates: list[tuple[str, np.ndarray]]) -> tuple[int, dict]:
        """Index of the chosen candidate ``(label, kept flags)`` (the first is the run's own cut, then
        :meth:`candidates`'), and the record of every candidate's held-out scores. The candidate labelled
        :attr:`standing_rule` (the run's own where none is) stands unless another beats it by ``z``
        standard errors."""
        if self._masked is None:
            raise RuntimeError("WidthCheck.prepare(model, inputs, calibration) must run before choose")
        held = self._held_out
        keys = [np.asarray(kept, dtype=bool).tobytes() for _, kept in candidates]
        measured: dict[bytes, tuple] = {}  # a cap that does not bind repeats a cut: measure it once
        for key, (_, kept) in zip(keys, candidates):
            if key not in measured:
                measured[key] = self._masked.measure(kept, held.x, held.y, self._device)
        scores = [measured[key] for key in keys]
        per_image = np.stack([s[1] for s in scores])  # (candidates, images)
        mean = per_image.mean(1)
        labels = [label for label, _ in candidates]
        standing = labels.index(self.standing_rule) if self.standing_rule in labels else 0
        best = int(np.argmax(mean))  # the first (loosest) on a tie
        difference = per_image[best] - per_image[standing]
        standard_error = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 0.0
        gain = float(difference.mean())
        if gain <= self.z * standard_error:
            best = standing
        record = {"candidates": labels, "held_out_accuracy": [s[0] for s in scores],
                  "held_out_log_likelihood": mean.tolist(), "chosen": candidates[best][0],
                  "best_gain_nats": gain, "best_gain_standard_error": standard_error,
                  "held_out_images": len(held.y), "overlaps_calibration": held.overlaps_calibration,
                  "adapted_batchnorm": self.adapt_batchnorm, "standing": labels[standing]}
        return best, record

    def cut_candidates(self, budget: RoundBudget, cost_model, cut_at, first=None, final: bool = False) -> list[tuple]:
        """``(label, budget, selector, cuts)`` of the run's rules and each of :meth:`candidates` that can
        reach the target: this cut's, or with ``final`` the final cut's, each cap compounded over the
        cuts left (:meth:`RoundBudget.final`). ``cut_at(budget) -> (selector, cuts)`` makes a cut
        (``cuts.decision``: the kept flags); ``first``: the run's own selector and cuts, if made."""
        made = []
        for label, candidate in [("run", budget)] + self.candidates(budget):
            candidate = candidate.final() if final else candidate
            if label == "run" and first is not None:
                made.append((label, candidate, *first))
                continue
            try:
                candidate.check_reachable(cost_model)
            except BudgetError:
                continue  # a cap too tight for this cut's target
            made.append((label, candidate, *cut_at(candidate)))
        return made

    def checked_cut(self, budget: RoundBudget, cost_model, cut_at, first, predict_final: bool,
                    follow_prediction: bool = False) -> tuple:
        """The run's cut or a more conservative one (tighter caps, uniform widths), whichever
        :meth:`choose` prefers, as ``(budget, selector, cuts, final, record)``: ``final`` is the budget
        of the final cut chosen the same way among :meth:`cut_candidates` with ``final`` (with
        ``predict_final`` and cuts left after this one; else None). With ``follow_prediction`` this
        cut takes the rule the final cut's check chose (when this cut can reach its target under it):
        the cuts of a run compose, and a rule that suits this cut alone (e.g. the posterior's widths,
        cheap at a mild cut) can lead to final widths its check finds worse (``record["chosen_for_cut"]``
        keeps this cut's own choice)."""
        made = self.cut_candidates(budget, cost_model, cut_at, first)
        best, record = self.choose([(label, cuts.decision) for label, _, _, cuts in made])
        final = None
        if predict_final and budget.final_target < budget.target:  # the same check on the final cut
            finals = self.cut_candidates(budget, cost_model, cut_at, final=True)
            chosen_final, record["prediction"] = self.choose([(label, cuts.decision) for label, _, _, cuts in finals])
            final = finals[chosen_final][1]
            labels = [label for label, *_ in made]
            if follow_prediction and finals[chosen_final][0] in labels:
                record["chosen_for_cut"] = record["chosen"]
                best = labels.index(finals[chosen_final][0])
                record["chosen"] = labels[best]
        if self.keep_chosen_rule:
            self.standing_rule = made[best][0]
        return made[best][1:] + (final, record)

    def release(self):
        """Drop the network snapshot (the cut is made; the next round prepares anew); returns the
        input statistics it gathered (:meth:`MaskedCuts.named_statistics`), which the run's own
        compensation of this network can read instead of gathering them again."""
        statistics = None if self._masked is None else self._masked.named_statistics()
        self._masked = self._held_out = None
        return statistics


def prediction_budget(chosen: RoundBudget, budget: RoundBudget, cost_model) -> tuple[RoundBudget, str]:
    """The budget of a round's prediction of the final cut, and whose rule it is (``"chosen"`` or
    ``"run"``): the final target under the width rule this cut was made with (``chosen``: the width
    check's choice, e.g. a tighter cap or uniform widths, assumed kept by the later cuts;
    :meth:`RoundBudget.final` compounds its cap over them), or under the run's own rules (``budget``)
    where the chosen rule cannot reach the final target.

    Why: predicting with the run's cap while the check cut at a tighter one made ``--anneal-target
    last`` dim channels the later cuts would not have removed, and the prediction fulfilled itself (the
    small CNN at 20% of the MACs, seed 2: the last conv predicted at 6 of its 26 channels, where the
    default's later cuts at the check's cap kept 14; 73.1% final accuracy against 96.5%)."""
    final = chosen.final()
    if chosen is budget:
        return final, "chosen"
    try:
        final.check_reachable(cost_model)
    except BudgetError:
        return budget.final(), "run"
    return final, "chosen"
