"""--lr-schedule: each round's own cosine, or one cosine over the run's rounds (bayesprune.training.fit)."""
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bayesprune.config import PruneConfig
from bayesprune.cut import Job
from bayesprune.data import ImageData
from bayesprune.errors import ConfigError
from bayesprune.training import FitConfig, fit


def _learning_rates(monkeypatch, config: FitConfig) -> list[float]:
    """The learning rate of every optimiser step ``fit`` takes on 32 images in batches of 8 (4 steps an epoch)."""
    seen = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "SGD", Recording)
    x = torch.randn(32, 1, 2, 2)
    data = ImageData("toy", x, torch.randint(0, 2, (32,)), x, torch.zeros(32, dtype=torch.long), 2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    fit(model, data, config, torch.Generator().manual_seed(0), torch.device("cpu"), progress=False)
    return seen


def test_a_fit_decays_on_its_own_cosine(monkeypatch):
    rates = _learning_rates(monkeypatch, FitConfig(epochs=1, lr=0.1, batch_size=8))
    assert rates == pytest.approx([0.05 * (1 + math.cos(math.pi * s / 4)) for s in range(4)])


def test_a_window_takes_its_share_of_one_cosine(monkeypatch):
    # round 2 of 3 rounds of 4 steps: steps 4-7 of one cosine over 12 steps, 0.05 (1 + cos(pi s / 12)):
    # 0.075 down to 0.037
    rates = _learning_rates(monkeypatch, FitConfig(epochs=1, lr=0.1, batch_size=8, cosine_window=(4, 12)))
    assert rates == pytest.approx([0.075, 0.05 * (1 + math.cos(5 * math.pi / 12)), 0.05,
                                   0.05 * (1 + math.cos(7 * math.pi / 12))])


def test_job_gives_each_round_its_window():
    data = SimpleNamespace(train_y=torch.zeros(1000))  # 8 batches of 128 per epoch, 2 epochs: 16 steps a round
    fit_config = FitConfig(epochs=2, lr=0.01, batch_size=128)
    job = Job(PruneConfig(rounds=3, lr_schedule="run"), None, None, data, None, None, None, None, fit_config)
    assert [job.fit_of_round(r).cosine_window for r in (1, 2, 3)] == [(0, 48), (16, 48), (32, 48)]
    assert replace(job, config=PruneConfig(rounds=3)).fit_of_round(2) is fit_config  # "round": the fit as it is


def test_an_unknown_schedule_is_a_user_error():
    with pytest.raises(ConfigError, match="--lr-schedule"):
        PruneConfig(lr_schedule="step").validate()


def test_a_run_fine_tunes_each_round_in_its_window(tmp_path, monkeypatch):
    """End to end: ``--lr-schedule run`` reaches every round's fine-tuning (512 images, batch 128, 0.5 epochs: 2
    steps a round, 4 in all)."""
    import bayesprune.cut as cut_module
    from bayesprune.cli import main

    windows = []
    real_fit = cut_module.fit

    def recording_fit(model, data, config, *args, **kwargs):
        windows.append(config.cosine_window)
        return real_fit(model, data, config, *args, **kwargs)

    monkeypatch.setattr(cut_module, "fit", recording_fit)
    assert main(["run", "--criterion", "l2", "--rounds", "2", "--lr-schedule", "run", "--train-subset", "512",
                 "--test-subset", "128", "--epochs", "0.5", "--quiet", "--device", "cpu", "--no-report",
                 "--out", str(tmp_path / "run")]) == 0
    assert windows == [(0, 4), (2, 4)]


def test_annealing_above_its_measured_learning_rate_is_noted(tmp_path, capsys):
    """bayes's masks annealed toward the final cut collapsed at --lr 0.05 (analysis/README.md, stop 44): such a
    run says so, once; a run at the measured rate, without annealing, annealing toward each round's own cut or
    with a criterion that does not anneal does not."""
    from bayesprune.cli import main
    from bayesprune.rounds import ANNEALING_LARGE_LR, anneals_above_measured_lr

    bayes, l2 = SimpleNamespace(own_widths=True), SimpleNamespace(own_widths=False)
    large = PruneConfig(lr=0.05, rounds=3, epochs=2)
    assert anneals_above_measured_lr(large, bayes)
    assert not anneals_above_measured_lr(replace(large, lr=0.01), bayes)
    assert not anneals_above_measured_lr(replace(large, annealing=False), bayes)
    assert not anneals_above_measured_lr(replace(large, anneal_target="current"), bayes)  # it did not collapse
    assert anneals_above_measured_lr(replace(large, anneal_target="last"), bayes)
    assert not anneals_above_measured_lr(replace(large, rounds=1), bayes)  # one round: no masks
    assert not anneals_above_measured_lr(replace(large, epochs=0), bayes)
    assert not anneals_above_measured_lr(large, l2)
    common = ["run", "--rounds", "2", "--epochs", "0.1", "--posterior-draws", "20", "--train-subset", "256",
              "--test-subset", "64", "--quiet", "--no-report", "--device", "cpu"]
    assert main(common + ["--lr", "0.05", "--out", str(tmp_path / "large")]) == 0
    assert capsys.readouterr().out.count(ANNEALING_LARGE_LR) == 1
    assert main(common + ["--out", str(tmp_path / "default")]) == 0
    assert ANNEALING_LARGE_LR not in capsys.readouterr().out
