"""Several processes (torchrun, gloo on CPU) compute what one does: shards, the global-batch
BatchNorm, the Fisher's gathered rows, one writer, resume, and the commands that refuse."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from bayesprune.checkpoint import load_checkpoint
from bayesprune.cli import main
from bayesprune.config import PruneConfig
from bayesprune.distributed import Collective, shared_batch_norm
from bayesprune.errors import ConfigError
from bayesprune.resume import STATE_FILE
from bayesprune.rounds import run_pruning

# three rounds of the default (bayes) method on 384 images: 6 fine-tuning steps of 64 per round
RUN = ["--rounds", "3", "--posterior-draws", "20", "--train-subset", "384", "--test-subset", "256", "--epochs", "1",
       "--batch-size", "64", "--quiet", "--device", "cpu", "--no-report"]


def bayesprune(*args, processes: int = 1, kill_at: str | None = None):
    env = {k: v for k, v in os.environ.items() if k not in ("BAYESPRUNE_KILL_AT", "WORLD_SIZE", "RANK")}
    env["OMP_NUM_THREADS"] = "1"
    if kill_at:
        env["BAYESPRUNE_KILL_AT"] = kill_at
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
                if processes > 1 else [sys.executable])
    return subprocess.run([*launcher, "-m", "bayesprune", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def outcome(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    model, _, checkpoint = load_checkpoint(run / "model.pt")
    return {"accuracy": summary["final"]["accuracy"], "history": checkpoint["pruning_history"],
            "widths": [r["widths"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                       if r["event"] == "round"],
            "weights": model.state_dict(), "files": sorted(p.name for p in run.iterdir())}


@dataclass(frozen=True)
class _NotRankZero(Collective):
    """One process that takes itself for another than rank 0."""

    @property
    def is_main(self) -> bool:
        return False


def test_shards_cover_every_item_once_in_order():
    for size in (0, 1, 5, 64, 127):
        for world in (1, 2, 3, 8):
            parts = [Collective(rank, world).shard(size) for rank in range(world)]
            assert [i for part in parts for i in range(size)[part]] == list(range(size))
            lengths = [part.stop - part.start for part in parts]
            assert max(lengths) - min(lengths) <= 1
    assert Collective(1, 2).shard(5) == slice(3, 5)  # 5 = 3 + 2: rank 0 takes the extra one


def _shared_batch_norm_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    x = torch.randn(10, 3, 4, 4) * 2 + 1
    bn = nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
    part = Collective(rank, world).shard(len(x))
    with shared_batch_norm(bn):
        y = bn(x[part])
    # the loss of the whole batch is the sum over shards; this shard's part of its gradient
    (y * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).sum().backward()
    grads = [bn.weight.grad.clone(), bn.bias.grad.clone()]
    for g in grads:
        torch.distributed.all_reduce(g)  # DDP would average; the sum is the whole batch's gradient
    torch.save({"y": y.detach(), "part": (part.start, part.stop), "grads": grads,
                "running": (bn.running_mean.clone(), bn.running_var.clone())}, f"{out}/{rank}.pt")
    torch.distributed.barrier()  # leave together (see bayesprune.distributed.leave)
    torch.distributed.destroy_process_group()


def test_shared_batch_norm_over_two_shards_equals_batch_norm_over_the_whole_batch(tmp_path):
    mp.spawn(_shared_batch_norm_worker, args=(2, f"file://{tmp_path}/store", str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    x = (torch.randn(10, 3, 4, 4) * 2 + 1).requires_grad_(False)
    bn = nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
    y = bn(x)
    (y * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).sum().backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        start, stop = got["part"]
        torch.testing.assert_close(got["y"], y[start:stop].detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got["grads"][0], bn.weight.grad, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(got["grads"][1], bn.bias.grad, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(got["running"][0], bn.running_mean, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(got["running"][1], bn.running_var, atol=1e-6, rtol=1e-6)


def test_shared_batch_norm_leaves_the_layer_as_it_was():
    bn = nn.BatchNorm2d(2)
    with shared_batch_norm(nn.Sequential(bn)):
        assert "forward" in vars(bn)
    assert "forward" not in vars(bn)


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The same run in one process and in two (torchrun, gloo)."""
    root = tmp_path_factory.mktemp("distributed")
    single = bayesprune("run", *RUN, "--out", str(root / "one"))
    assert single.returncode == 0, single.stderr
    double = bayesprune("run", *RUN, "--out", str(root / "two"), processes=2)
    assert double.returncode == 0, double.stderr
    return root, outcome(root / "one"), outcome(root / "two"), double


def test_two_processes_keep_the_channels_one_keeps(one_and_two):
    root, one, two, _ = one_and_two
    assert two["history"] == one["history"] and two["widths"] == one["widths"]
    assert abs(two["accuracy"] - one["accuracy"]) <= 0.005
    for name, value in one["weights"].items():  # three rounds of fine-tuning apart: float-sum order only
        torch.testing.assert_close(two["weights"][name].float(), value.float(), atol=5e-3, rtol=0)
    assert json.loads((root / "two" / "config.json").read_text())["environment"]["processes"] == 2


def test_rank_zero_alone_writes_and_prints(one_and_two, tmp_path):
    root, one, two, double = one_and_two
    assert two["files"] == one["files"]
    assert double.stdout.count("run directory:") == 1
    events = [json.loads(line)["event"] for line in (root / "two" / "metrics.jsonl").read_text().splitlines()]
    assert events == ["base", "round", "round", "round"]
    # a process that is not rank 0 computes the run and writes nothing (here: alone, so it computes all)
    out = tmp_path / "rank1"
    config = PruneConfig(criterion="l1", rounds=1, train_subset=128, test_subset=64, epochs=0.5, batch_size=64,
                         device="cpu", progress=False, report=False, out=str(out))
    summary = run_pruning(config, collective=_NotRankZero())
    assert summary["final"]["macs"] < summary["base"]["macs"] and not out.exists()


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(one_and_two, tmp_path):
    _, _, two, _ = one_and_two
    out = tmp_path / "killed"
    # step 10 of fine-tuning is in round 2: both processes die there, after round 1 was saved
    killed = bayesprune("run", *RUN, "--out", str(out), processes=2, kill_at="finetune-step:10")
    assert killed.returncode != 0 and (out / STATE_FILE).exists() and not (out / "summary.json").exists()
    resumed = bayesprune("run", "--resume", str(out), "--quiet", processes=2)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("resuming") == 1
    again = outcome(out)
    assert again["history"] == two["history"] and again["accuracy"] == pytest.approx(two["accuracy"], abs=0.005)


def test_a_comparison_grid_on_two_processes_writes_once_and_resumes(tmp_path):
    args = ["compare", "--methods", "l1", "--target-macs", "0.5", "--seeds", "2", "--rounds", "1",
            "--train-subset", "256", "--test-subset", "128", "--epochs", "1", "--batch-size", "64", "--quiet",
            "--device", "cpu", "--out", str(tmp_path / "grid")]
    first = bayesprune(*args, processes=2)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("comparison directory:") == 1
    rows = (tmp_path / "grid" / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and sorted(p.name for p in (tmp_path / "grid" / "cells").iterdir()) == [
        "l1__macs0.5__seed0.json", "l1__macs0.5__seed1.json"]
    again = bayesprune(*args, processes=2)  # every cell finished: nothing runs again
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "grid" / "results.csv").read_text().splitlines() == rows


@pytest.mark.parametrize("args, message", [
    (["plan", "--out", "PLAN"], "bayesprune plan runs in one process"),
    (["compare", "--methods", "l1", "--backend", "ray", "--out", "GRID"], "--backend ray runs each cell as a Ray"),
])
def test_commands_that_run_in_one_process_refuse_torchrun(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    args = [a.replace("PLAN", str(tmp_path / "p")).replace("GRID", str(tmp_path / "g")) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "(rank 1 of 2)" in err
    assert not any(tmp_path.iterdir())


def test_a_latency_budget_is_refused_on_several_processes(tmp_path):
    config = PruneConfig(target_latency=0.5, train_subset=128, test_subset=64, device="cpu", progress=False,
                         out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="--target-latency times the network"):
        run_pruning(config, collective=Collective(rank=0, world_size=2))
    assert not (tmp_path / "run").exists()
