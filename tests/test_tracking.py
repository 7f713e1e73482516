"""Channel identities across rounds and the scoring of predictions (bayesprune.tracking)."""

import numpy as np
import pytest

from bayesprune.tracking import ChannelTracker, area_under_roc, score_predictions


def test_prediction_scores_by_hand():
    tracker = ChannelTracker.__new__(ChannelTracker)
    tracker.alive = {"a": np.arange(3), "b": np.arange(2)}
    ids = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    tracker.remove({"a": [1], "b": [0]})
    assert tracker.survivors() == {("a", 0), ("a", 2), ("b", 1)}
    scores = score_predictions(ids, np.array([0.2, 0.9, 0.1, 0.6, 0.3]), tracker.survivors())
    assert scores["prediction_auroc"] == 1.0  # both pruned channels ranked above the kept ones
    assert scores["prediction_brier"] == pytest.approx((0.04 + 0.01 + 0.01 + 0.16 + 0.09) / 5)
    swapped = score_predictions(ids, np.array([0.9, 0.2, 0.1, 0.6, 0.3]), tracker.survivors())
    # pruned 0.2 beats kept 0.1 only; pruned 0.6 beats 0.1 and 0.3: 3 of 6 (pruned, kept) pairs right
    assert swapped["prediction_auroc"] == pytest.approx(3 / 6)


def test_area_under_roc_counts_ties_as_half_and_matches_scikit_learn():
    # positives 0.5, 0.7; negatives 0.5, 0.1: pairs (0.5, 0.5) a tie, the other three right -> 3.5 / 4
    assert area_under_roc(np.array([1, 1, 0, 0]), np.array([0.5, 0.7, 0.5, 0.1])) == pytest.approx(3.5 / 4)
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    positive = rng.random(200) < 0.3
    score = rng.integers(0, 7, 200) / 6  # many ties
    assert area_under_roc(positive, score) == pytest.approx(roc_auc_score(positive, score))
