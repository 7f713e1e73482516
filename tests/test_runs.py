"""bayesprune.runs: run directories, written atomically, refused when they would clobber a run."""
import json
import os

import numpy as np
import pytest
import torch

from bayesprune.errors import RunDirError
from bayesprune.runs import RUN_FILES, RunDir, atomic_path, atomic_write_json, check_run_dir


def test_atomic_json_takes_numpy_torch_and_paths_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"a": np.float64(0.5), "b": torch.tensor([1, 2]), "c": tmp_path})
    assert json.loads(target.read_text()) == {"a": 0.5, "b": [1, 2], "c": str(tmp_path)}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text())["a"] == 0.5  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_atomic_path_renames_on_success_and_removes_on_failure(tmp_path):
    target = tmp_path / "figure.png"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and oct(target.stat().st_mode & 0o777) != oct(0o600)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("the library failed")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["figure.png"]


def test_output_directory_rules(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        check_run_dir(tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(RunDirError, match="is not empty"):
        check_run_dir(tmp_path / "other")
    RunDir(tmp_path / "run").write_json("config.json", {})
    with pytest.raises(RunDirError, match="--resume"):
        check_run_dir(tmp_path / "run")
    check_run_dir(tmp_path / "run", overwrite=True)
    check_run_dir(tmp_path / "new" / "deeper")  # creatable
    assert not (tmp_path / "new").exists()  # and nothing created


def test_overwrite_removes_every_file_a_run_writes_and_nothing_else(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    for name in (*RUN_FILES, "posterior_round1.nc", "keep_probability_round2.csv", ".model.pt.123.tmp"):
        (path / name).write_text("old")
    (path / "report").mkdir()
    (path / "report" / "index.html").write_text("old")
    (path / "mine.txt").write_text("the user's")
    run = RunDir(path, overwrite=True)
    assert sorted(os.listdir(path)) == ["mine.txt"]  # width_steps.json of an earlier --round-to auto run too
    run.log_metrics({"event": "base", "accuracy": np.float32(0.5)})
    run.log_metrics({"event": "round", "round": 1})
    assert [e["event"] for e in run.events()] == ["base", "round"]
    run.restore_metrics(run.events()[:1])  # resume drops an unfinished round's lines
    assert [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()] == [
        {"event": "base", "accuracy": 0.5}]
