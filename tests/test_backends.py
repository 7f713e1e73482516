"""Comparison grids on Ray: a local Ray instance runs the cells, a rerun skips finished cells, and bad
input (no Ray, an unreachable cluster) gives one line and exit 2."""
import csv
import sys

import pytest

from bayesprune.cli import main

GRID = ["compare", "--methods", "l1,random", "--target-macs", "0.6", "--seeds", "1", "--model", "smallcnn",
        "--data", "digits", "--rounds", "1", "--epochs", "0.1", "--train-subset", "128", "--test-subset", "64",
        "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the [distributed] extra (ray) is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_grid_runs_every_cell_as_a_task_and_skips_finished_ones(tmp_path, local_ray):
    out = tmp_path / "cmp"
    assert main([*GRID, "--backend", "ray", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted(r["method"] for r in rows) == ["l1", "random"]
    assert (out / "table.md").is_file() and (out / "pareto.png").is_file()
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    (out / "cells" / "random__macs0.6__seed0.json").unlink()  # as if its task died
    assert main([*GRID, "--backend", "ray", "--out", str(out)]) == 0
    again = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    assert again["l1__macs0.6__seed0.json"] == finished["l1__macs0.6__seed0.json"]  # not run again
    assert "random__macs0.6__seed0.json" in again
    sequential = tmp_path / "seq"  # the same grid in this process gives the same rows
    assert main([*GRID, "--out", str(sequential)]) == 0
    def measured(path):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(open(path))]

    assert measured(sequential / "results.csv") == measured(out / "results.csv")


@pytest.mark.parametrize("args, message", [
    (["--backend", "dask"], "unknown --backend 'dask'"),
    (["--ray-address", "localhost:6379"], "--ray-address needs --backend ray"),
    (["--backend", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["--backend", "ray", "--ray-address", "nowhere"], "must be HOST:PORT"),
])
def test_backend_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "cmp"
    assert main([*GRID, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("bayesprune: error:"), err
    assert not out.exists()


def test_ray_backend_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert main([*GRID, "--backend", "ray", "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs Ray, which is not installed" in err and "bayesprune[distributed]" in err
    assert not (tmp_path / "cmp").exists()
