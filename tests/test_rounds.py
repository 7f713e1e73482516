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
