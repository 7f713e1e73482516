"""Annealed soft masks while fine-tuning (bayesprune.annealing)."""

import numpy as np
import pytest

from bayesprune.annealing import RoundAnnealing, annealed_mask, target_of_round, tempered_mask, temperature_schedule


def test_annealed_masks_go_from_uniform_to_hard():
    p = np.array([0.02, 0.3, 0.5, 0.7, 0.99])
    hard = np.array([0.0, 0.0, 0.5, 1.0, 1.0])
    assert np.array_equal(annealed_mask(p, 0.0), hard)
    assert np.allclose(annealed_mask(p, 1e-3), hard, atol=1e-6)
    assert np.allclose(annealed_mask(p, 1e4), 0.5, atol=1e-3)
    assert np.allclose(annealed_mask(p, 1.0), p)  # T = 1: the keep probability itself
    # by hand: p = 0.7 at T = 0.5 is 0.7^2 / (0.7^2 + 0.3^2)
    assert annealed_mask(np.array([0.7]), 0.5)[0] == pytest.approx(0.49 / 0.58)
    assert temperature_schedule(3, 1.0, 0.5) == [1.0, 0.5, 0.0]


def test_annealing_toward_the_current_cut_hardens_to_its_mask():
    p = np.array([0.2, 0.5, 0.9, 1.0])
    assert np.array_equal(tempered_mask(p, 0.0), np.ones(4))  # every survivor of the cut: 1
    np.testing.assert_allclose(tempered_mask(p, 1.0), p)
    assert np.all(np.diff([tempered_mask(p, t)[0] for t in (1.0, 0.5, 0.1)]) > 0)  # cooling lifts masks
    np.testing.assert_array_equal(annealed_mask(p, 0.0), [0.0, 0.5, 1.0, 1.0])  # the final-target variant


def test_what_each_round_anneals_toward():
    assert [target_of_round("last", r, 3) for r in (1, 2)] == ["current", "final"]  # R-1 = 2 looks at the end
    assert [target_of_round("last", r, 4) for r in (1, 2, 3)] == ["current", "current", "final"]
    assert target_of_round("last", 1, 2) == "final" and target_of_round("current", 2, 3) == "current"
    assert RoundAnnealing.of_round("last", 2, 3, t0=1.0, alpha=0.5) == RoundAnnealing(0.5, "final")
    with pytest.raises(ValueError, match="unknown anneal target"):
        target_of_round("later", 1, 3)


def test_masks_follow_the_rounds_target():
    from types import SimpleNamespace

    from bayesprune.cut import anneal_masks

    tracker = SimpleNamespace(ids=lambda graph: [7, 3])
    step = SimpleNamespace(prediction=([3, 7], np.array([0.9, 0.2])),  # P(pruned by the end)
                           keep_current=([3, 7], np.array([1.0, 0.64])))  # P(kept by this cut)
    final = anneal_masks(RoundAnnealing(1.0, "final"), tracker, None, step)
    np.testing.assert_allclose(final, [0.8, 0.1])  # T = 1: the keep probability of the end, channel 7 first
    np.testing.assert_allclose(anneal_masks(RoundAnnealing(0.5, "current"), tracker, None, step), [0.8, 1.0])
