"""Resumable, crash-safe runs: SIGKILL at several points, resume, and get the uninterrupted result."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bayesprune.checkpoint import load_checkpoint
from bayesprune.cli import main
from bayesprune.resume import STATE_FILE

# three rounds of the default (bayes) method, small enough for a test
RUN = ["--rounds", "3", "--svi-steps", "12", "--posterior-draws", "20", "--train-subset", "384",
       "--test-subset", "256", "--epochs", "1", "--batch-size", "64", "--quiet", "--device", "cpu", "--no-report"]


def bayesprune(*args, kill_at=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("BAYESPRUNE_KILL_AT", None)
    if kill_at:
        env["BAYESPRUNE_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "bayesprune", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def outcome(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    model, _, checkpoint = load_checkpoint(run / "model.pt")
    return {"accuracy": summary["final"]["accuracy"], "macs": summary["final"]["macs"],
            "auroc": [r["prediction_auroc"] for r in summary["rounds"]],
            "history": checkpoint["pruning_history"],
            "weights": {k: v for k, v in model.state_dict().items()}}


def assert_complete_files(run: Path, killed: bool = True) -> None:
    """Every file there is whole: JSON parses, checkpoints load. A kill mid-write may leave the
    hidden temporary file it was writing (never under the real name); resuming removes it."""
    hidden = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert all(name.endswith(".tmp") for name in hidden) if killed else not hidden
    for path in run.glob("*.json"):
        json.loads(path.read_text())
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line)
    if (run / "model.pt").exists():
        load_checkpoint(run / "model.pt")
    if (run / STATE_FILE).exists():
        torch.load(run / STATE_FILE, weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "whole"
    proc = bayesprune("run", *RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert not (out / STATE_FILE).exists()  # removed when the run finishes
    return outcome(out)


def test_killed_runs_resume_to_the_uninterrupted_result(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    # mid-Fisher of round 1, then mid-epoch of round 2 (after resuming), then mid-write of a file
    kills = ["fisher-batch:3", "finetune-step:10", "atomic-write:4"]
    first = bayesprune("run", *RUN, "--out", str(out), kill_at=kills[0])
    assert first.returncode == -signal.SIGKILL
    assert_complete_files(out)
    for kill_at in kills[1:]:
        killed = bayesprune("run", "--resume", str(out), "--quiet", kill_at=kill_at)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert_complete_files(out)
    rounds = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert not (out / "summary.json").exists() and (out / STATE_FILE).exists()
    finished = bayesprune("run", "--resume", str(out), "--quiet")
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stdout and len(rounds) >= 2
    assert_complete_files(out, killed=False)
    resumed = outcome(out)
    assert resumed["history"] == uninterrupted["history"]  # the same channels kept
    assert resumed["accuracy"] == uninterrupted["accuracy"] and resumed["auroc"] == uninterrupted["auroc"]
    for name, value in uninterrupted["weights"].items():
        assert torch.equal(resumed["weights"][name], value), name


def test_resume_refusals(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["run", "--resume", str(tmp_path / "empty")]) == 2
    assert "not a bayesprune run directory" in capsys.readouterr().err
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text("{}")
    assert main(["run", "--resume", str(tmp_path / "old")]) == 2
    assert f"no {STATE_FILE}" in capsys.readouterr().err
    (tmp_path / "old" / STATE_FILE).write_bytes(b"PK\x03\x04 truncated")
    assert main(["run", "--resume", str(tmp_path / "old")]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_a_resumed_run_resolves_its_base_once_for_the_latency_feedback_and_the_teacher(monkeypatch):
    """--resume with --target-latency (feedback) and --distill: both need the base again; it is loaded once."""
    from types import SimpleNamespace

    from bayesprune import start

    calls = []
    base = torch.nn.Linear(2, 2)
    monkeypatch.setattr(start, "resolve_model", lambda *a: calls.append(a) or SimpleNamespace(model=base, arch=None))
    config = SimpleNamespace(model="m.pt", weights=None, trust_pickle=False, expand=1.0, distill=0.5)
    job = SimpleNamespace(config=config, data=None, device=torch.device("cpu"), resolved_base=None)
    assert start._resolved_again(job).model is base
    assert start.distillation_teacher(job, network=None, state=object()) is base
    assert len(calls) == 1
