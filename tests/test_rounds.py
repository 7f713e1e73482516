"""The iterative engine end to end: predictions, expansion, annealing switch (bayesprune.rounds)."""
import json

import torch

from bayesprune.checkpoint import load_checkpoint
from bayesprune.cli import main
from bayesprune.groups import count_macs_params


def test_iterative_bayes_run_with_expansion_reports_predictions_and_reloads(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--rounds", "2", "--expand", "1.5", "--svi-steps", "10", "--posterior-draws", "30",
                 "--train-subset", "512", "--test-subset", "256", "--epochs", "0.25", "--quiet",
                 "--device", "cpu", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["criterion"] == "bayes"  # the default
    assert summary["expanded"]["macs"] > 2 * summary["base"]["macs"]
    assert summary["final"]["macs"] <= 0.5 * summary["base"]["macs"]
    first, last = summary["rounds"]
    assert first["temperature"] == 1.0 and last["temperature"] is None
    assert 0.0 <= first["prediction_auroc"] <= 1.0 and 0.0 <= first["prediction_brier"] <= 1.0
    assert first["accuracy_after_cut_plain"] is not None
    model, arch, _ = load_checkpoint(out / "model.pt")
    assert arch.width == 1.5
    assert count_macs_params(model, torch.zeros(1, 1, 28, 28))[0] == summary["final"]["macs"]


def test_no_annealing_flag_turns_masks_off(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--rounds", "2", "--no-annealing", "--reparameterize", "none", "--svi-steps", "5",
                 "--posterior-draws", "20", "--train-subset", "256", "--test-subset", "128", "--epochs", "0.25",
                 "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    rounds = json.loads((out / "summary.json").read_text())["rounds"]
    assert all(r["temperature"] is None and r["accuracy_after_cut_plain"] is None for r in rounds)


def test_run_pruning_takes_a_users_allocation_object(tmp_path):
    """Issue 17: allocations are objects behind one counts(...) contract; a user's goes in whole."""
    import bayesprune as bp
    from bayesprune.decision.allocation import UniformWidths

    class FirstLayerIntact:
        name = "first-layer-intact"

        def __init__(self):
            self.rounds = 0

        def for_round(self, graph, calibration):  # measured on each round's network
            self.rounds += 1
            return self

        def counts(self, cost_model, target, kind, cap, round_to=1, orders=None, scores=None):
            cap = cap.copy()
            cap[0] = 0  # never cut the first group; uniform over the rest
            return UniformWidths().counts(cost_model, target, kind, cap, round_to)

    allocation = FirstLayerIntact()
    config = bp.PruneConfig(criterion="l2", target_macs=0.6, rounds=2, epochs=0.1, train_subset=300,
                            test_subset=100, report=False, progress=False, out=str(tmp_path / "run"))
    summary = bp.run_pruning(config, allocation=allocation)
    assert allocation.rounds == 2 and summary["final_ratio"]["macs"] <= 0.6
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rounds = [e for e in events if e["event"] == "round"]
    first = next(iter(rounds[0]["widths"]))
    assert all(r["widths"][first][0] == r["widths"][first][1] for r in rounds)  # first group kept whole
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded["allocation"] == "first-layer-intact"


def test_pruning_without_fine_tuning_points_at_the_best_measured_configuration(tmp_path, capsys):
    """Without fine-tuning bayes with obs inside the layers, widths priced after the refit and every
    cut following the checked prediction (its defaults) was measured best (analysis/bayes_v2.py): a
    run that departs from them says so, once; not the default run, nor one with uniform widths."""
    from bayesprune.rounds import NO_FINETUNE_WIDTHS

    common = ["run", "--rounds", "1", "--epochs", "0", "--posterior-draws", "20", "--train-subset", "256",
              "--test-subset", "64", "--quiet", "--no-report", "--device", "cpu"]
    assert main(common + ["--within", "l2", "--out", str(tmp_path / "l2")]) == 0
    assert capsys.readouterr().out.count(NO_FINETUNE_WIDTHS) == 1
    assert main(common + ["--allocation", "uniform", "--within", "l2", "--out", str(tmp_path / "uniform")]) == 0
    assert NO_FINETUNE_WIDTHS not in capsys.readouterr().out
    assert main(common + ["--out", str(tmp_path / "default")]) == 0
    assert NO_FINETUNE_WIDTHS not in capsys.readouterr().out
    # annealing toward the current cut turns the checked prediction off, and with it following it
    assert main(common + ["--anneal-target", "current", "--out", str(tmp_path / "current")]) == 0
    assert capsys.readouterr().out.count(NO_FINETUNE_WIDTHS) == 1
    # the width check's tie rule of a fine-tuning run (the held-out best is the default here)
    assert main(common + ["--criterion-option", "check_z=2", "--out", str(tmp_path / "tie")]) == 0
    assert capsys.readouterr().out.count(NO_FINETUNE_WIDTHS) == 1
    assert main(common + ["--no-adapt-batchnorm", "--out", str(tmp_path / "unadapted")]) == 0
    assert capsys.readouterr().out.count(NO_FINETUNE_WIDTHS) == 1


def test_adapt_batchnorm_re_estimates_the_statistics_of_each_cut_network(tmp_path, monkeypatch):
    """--adapt-batchnorm: after each cut the pruned network's BatchNorm statistics are re-estimated on
    the calibration batches (bayesprune.batchnorm_adaptation); without fine-tuning the saved network
    keeps them, so its norms hold the average of their inputs over those batches. With --epochs 0 that
    is the default; --no-adapt-batchnorm turns it off."""
    import bayesprune.cut as cut_module
    from bayesprune.batchnorm_adaptation import adapt_batchnorm

    adapted = []

    def recording(model, batches):
        batches = list(batches)
        adapted.append((model, batches))
        return adapt_batchnorm(model, batches)

    monkeypatch.setattr(cut_module, "adapt_batchnorm", recording)
    common = ["run", "--criterion", "l2", "--rounds", "2", "--epochs", "0", "--train-subset", "256",
              "--test-subset", "64", "--calibration-batches", "2", "--batch-size", "64", "--quiet", "--no-report",
              "--device", "cpu"]
    assert main(common + ["--no-adapt-batchnorm", "--out", str(tmp_path / "plain")]) == 0
    assert adapted == []
    assert main(common + ["--out", str(tmp_path / "adapted")]) == 0  # --epochs 0: on by default
    assert len(adapted) == 2 and all(len(b) == 2 and len(b[0][0]) == 64 for _, b in adapted)
    model, _, _ = load_checkpoint(tmp_path / "adapted" / "model.pt")
    batches = adapted[-1][1]
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    inputs = []
    handle = norm.register_forward_hook(lambda m, i, o: inputs.append(i[0]))
    with torch.no_grad():
        for x, _ in batches:
            model.eval()(x)
    handle.remove()
    expected = torch.stack([i.mean((0, 2, 3)) for i in inputs]).mean(0)  # each batch's mean, averaged
    torch.testing.assert_close(norm.running_mean, expected, atol=1e-5, rtol=1e-4)
    plain, _, _ = load_checkpoint(tmp_path / "plain" / "model.pt")
    first_plain = next(m for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(first_plain.running_mean, norm.running_mean)
    recorded = json.loads((tmp_path / "adapted" / "config.json").read_text())["config"]
    assert recorded["adapt_batchnorm"] is None and recorded["epochs"] == 0  # resolved the same on --resume
    rounds = [json.loads(line) for line in (tmp_path / "adapted" / "metrics.jsonl").read_text().splitlines()]
    assert [r["batchnorm_adapted_on"] for r in rounds if "round" in r] == [128, 128]  # 2 batches of 64, each cut


def test_adapt_batchnorm_defaults_to_on_without_fine_tuning_only():
    from bayesprune.config import PruneConfig

    assert PruneConfig(epochs=0).adapts_batchnorm and not PruneConfig(epochs=0.5).adapts_batchnorm
    assert not PruneConfig(epochs=0, adapt_batchnorm=False).adapts_batchnorm
    assert PruneConfig(epochs=2, adapt_batchnorm=True).adapts_batchnorm


def test_adapt_batchnorm_on_a_network_without_batchnorm_is_refused_before_any_work():
    from types import SimpleNamespace

    import pytest

    from bayesprune.config import PruneConfig
    from bayesprune.errors import ConfigError
    from bayesprune.rounds import _preflight
    from helpers import Chain

    job = SimpleNamespace(config=PruneConfig(adapt_batchnorm=True), inputs=torch.zeros(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="no BatchNorm layer with running statistics; drop the flag"):
        _preflight(job, SimpleNamespace(model=Chain()))
    # norms that normalise by each batch's statistics (no running ones) leave nothing to adapt either
    batch_statistics_only = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3),
                                                torch.nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(ConfigError, match="with running statistics"):
        _preflight(job, SimpleNamespace(model=batch_statistics_only))
