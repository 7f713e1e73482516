"""`bayesprune run` end to end, and the one-line errors users get for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bayesprune.checkpoint import load_checkpoint
from bayesprune.cli import main
from bayesprune.groups import count_macs_params

QUICK = ["--train-subset", "512", "--test-subset", "256", "--epochs", "0.5", "--quiet", "--device", "cpu"]


def test_run_end_to_end_and_reload(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--criterion", "l1", "--rounds", "2", "--target-macs", "0.6", "--out", str(out), *QUICK]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["criterion"] == "l1"
    keys = {"accuracy", "macs", "params"}
    assert keys <= set(summary["base"]) and set(summary["final"]) == keys
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert {"round", "accuracy", "macs", "params", "seconds"} <= set(summary["rounds"][0])
    assert summary["final"]["macs"] <= 0.6 * summary["base"]["macs"]
    assert summary["rounds"][0]["macs"] > summary["final"]["macs"]
    assert summary["final"]["accuracy"] > 0.5  # a shipped 96% network pruned by 40% stays useful
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["seed"] == 0 and config["architecture"]["name"] == "smallcnn"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["event"] for l in lines] == ["base", "round", "round"]
    model, arch, ckpt = load_checkpoint(out / "model.pt")
    x = torch.zeros(1, 1, 28, 28)
    assert count_macs_params(model, x) == (summary["final"]["macs"], summary["final"]["params"])
    table = capsys.readouterr().out
    assert "round" in table and "base" in table


def test_run_is_reproducible_from_its_seed(tmp_path):
    args = ["run", "--rounds", "1", "--criterion", "random", "--seed", "3", *QUICK, "--epochs", "0.2"]
    main([*args, "--out", str(tmp_path / "a")])
    main([*args, "--out", str(tmp_path / "b")])
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    assert a["final"] == b["final"]


def test_refuses_to_overwrite_a_run(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert main(["run", "--out", str(tmp_path / "run"), *QUICK]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["run", "--out", str(tmp_path / "other"), *QUICK]) == 2
    assert "is not empty" in capsys.readouterr().err and (tmp_path / "other" / "notes.txt").exists()


@pytest.mark.parametrize("args,message,stopped_in", [
    # one step per round: round 1's step is finite (and wrecks the weights), round 2's first is not
    (["--criterion", "l1", "--lr", "1e30", "--train-subset", "128", "--epochs", "1"],
     "at step 0 of round 2 fine-tune; lower the learning rate", 2),
    (["--criterion", "bayes-svi", "--svi-lr", "1e12", "--svi-steps", "20"], "the ELBO diverged", 1),
])
def test_training_failures_stop_the_round_and_keep_the_last_good_model(tmp_path, capsys, args, message, stopped_in):
    out = tmp_path / "run"
    assert main(["run", *QUICK, "--rounds", "2", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and f"The run stopped in round {stopped_in}" in err[0]
    assert not (out / "summary.json").exists() and (out / "resume.pt").exists()
    if stopped_in == 2:  # the last good model: round 1's, complete and loadable
        assert "model.pt holds round 1's network" in err[0]
        model, _, checkpoint = load_checkpoint(out / "model.pt")
        assert checkpoint["meta"]["round"] == 1 and all(torch.isfinite(p).all() for p in model.parameters())
    else:
        assert "no round finished" in err[0] and not (out / "model.pt").exists()


@pytest.mark.parametrize("args,message", [
    (["--data", "fashion-mnist", "--data-dir", "{tmp}/missing"], "does not exist"),
    (["--target-macs", "1.5"], "outside (0, 1]"),
    (["--target-macs", "0"], "outside (0, 1]"),
    (["--target-macs", "half"], "must be a number"),
    (["--criterion", "magic"], "unknown --criterion 'magic'"),
    (["--model", "resnet21"], "unknown model"),
    (["--model", "fixed_size_model:make", "--data", "digits"], "cannot take digits"),
    (["--target-macs", "0.001", "--rounds", "1"], "cannot be met without emptying layers"),
    (["--target-macs", "0.0001", "--rounds", "2"], "cannot be met without emptying layers"),
    (["--model", "{tmp}/garbage.pt"], "not a readable checkpoint"),
    (["--criterion", "bayes", "--prior", "laplace"], "unknown prior 'laplace'"),
    (["--criterion", "bayes-svi", "--inference", "nuts", "--train-subset", "3000"], "add --train-subset 2000"),
    (["--reparameterize", "magic"], "unknown --reparameterize"),
    (["--expand", "0.5"], "--expand must be >= 1"),
    (["--forgetting", "2"], "--forgetting must be in [0, 1]"),
    (["--chains", "0"], "--chains must be >= 1"),
    (["--round-to", "8", "--allocation", "global"], "needs --allocation uniform"),
    (["--round-to", "8"], "needs --allocation uniform"),  # bayes's own default is its posterior widths
    (["--anneal-target", "later"], "unknown --anneal-target 'later'"),
    (["--within", "bayes"], "cannot order channels inside a layer"),
    (["--within", "magic"], "unknown --within 'magic'"),
    (["--per-layer-scale"], "no per-layer scale"),
    (["--tau0", "0"], "--tau0 must be > 0, got 0"),
    (["--calibration-batches", "0"], "--calibration-batches must be >= 1"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    # every numeric option: zero, negative, non-finite (config.OPTION_BOUNDS)
    (["--epochs", "-1"], "--epochs must be >= 0, got -1"),
    (["--epochs", "inf"], "--epochs must be a finite number >= 0"),
    (["--search-epochs", "nan"], "--search-epochs must be a finite number >= 0"),
    (["--rounds", "0"], "--rounds must be >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--max-prune-fraction", "1"], "--max-prune-fraction must be in (0, 1)"),
    (["--distill", "2"], "--distill must be in [0, 1]"),
    (["--distill-temperature", "0"], "--distill-temperature must be > 0"),
    (["--expand-noise", "-0.1"], "--expand-noise must be >= 0"),
    (["--svi-steps", "0"], "--svi-steps must be >= 1"),
    (["--svi-lr", "-1"], "--svi-lr must be > 0"),
    (["--posterior-draws", "1"], "--posterior-draws must be >= 2"),
    (["--anneal-t0", "0"], "--anneal-t0 must be > 0"),
    (["--anneal-alpha", "1"], "--anneal-alpha must be in (0, 1)"),
    (["--train-subset", "0"], "--train-subset must be >= 1"),
    (["--test-subset", "-5"], "--test-subset must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--tau0", "inf"], "--tau0 must be a finite number > 0"),
    # options a criterion or prior declares in its constructor (bayesprune.options)
    (["--criterion", "bayes", "--criterion-option", "nope=1"], "bayes has no such option; it accepts fold_means=False"),
    (["--criterion", "l2", "--criterion-option", "nope=1"], "l2 has no such option; it accepts none"),
    (["--criterion", "thinet", "--criterion-option", "samples=many"], "samples must be an integer"),
    (["--criterion", "thinet", "--criterion-option", "seed=3"], "has no such option"),  # --seed sets it
    (["--prior-option", "slab_scale"], "--prior-option takes NAME=VALUE"),
    (["--prior", "regularized-horseshoe", "--prior-option", "slab_scale=nan"], "must be a finite number"),
    (["--prior", "regularized-horseshoe", "--prior-option", "tau0=2"], "has no such option"),  # --tau0 sets it
    (["--data", "fashion-mnist", "--data-dir", "{tmp}/wrong-magic"], "wrong magic number"),
    (["--data", "fashion-mnist", "--data-dir", "{tmp}/truncated-idx"], "truncated"),
    (["--model", "{tmp}/rgb.pt"], "takes 3-channel images but mnist5k has 1"),
    (["--model", "{tmp}/plain.pt"], "is not a bayesprune checkpoint"),
    (["--model", "{tmp}/text.pt"], "not a readable checkpoint"),
    (["--model", "{tmp}/truncated.pt"], "not a readable checkpoint"),
    (["--model", "smallcnn", "--weights", "{tmp}/resnet20-state.pt"], "does not fit architecture smallcnn"),
    (["--model", "odd_models:no_convolution"], "no prunable channel group"),
    (["--model", "odd_models:with_channel_mixer"], "layer 3 (ChannelMixer) is not supported by torch-pruning"),
    (["--out", "{tmp}/a-file/run"], "choose a writable --out"),
])
def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    _bad_files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "out"
    assert main(["run", *QUICK, "--out", str(out), *args]) == 2  # args last: they override QUICK
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("bayesprune: error:")
    assert not out.exists() and not (tmp_path / "a-file").is_dir()


def _bad_files(tmp: Path) -> None:
    """The broken inputs of the catalogue."""
    import gzip

    from bayesprune.checkpoint import save_checkpoint
    from bayesprune.nets import Architecture, build_model
    from bayesprune.pretrained import models_dir

    (tmp / "garbage.pt").write_bytes(b"\x00not a zip file")
    (tmp / "text.pt").write_text("these are not weights\n")
    (tmp / "a-file").write_text("")
    torch.save({"weights": torch.ones(3)}, tmp / "plain.pt")
    shipped = (models_dir() / "smallcnn-mnist5k.pt").read_bytes()
    (tmp / "truncated.pt").write_bytes(shipped[: len(shipped) // 2])
    torch.save(build_model(Architecture("resnet20", 1, 10, 28)).state_dict(), tmp / "resnet20-state.pt")
    rgb = Architecture("smallcnn", 3, 10, 28)
    save_checkpoint(tmp / "rgb.pt", build_model(rgb), rgb)
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for folder, payload in (("wrong-magic", b"\x00\x00\x09\x03" + bytes(16)), ("truncated-idx", b"\x00\x00\x08")):
        (tmp / folder).mkdir()
        for name in names:
            with gzip.open(tmp / folder / f"{name}.gz", "wb") as handle:
                handle.write(payload)


def test_console_script_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bayesprune", "run", "--target-macs", "1.5", "--out",
                           str(tmp_path / "x")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("bayesprune: error: --target-macs 1.5 is outside (0, 1]; it is the "
                                   "fraction of the base model to keep, e.g. 0.5")


def test_listing_commands(capsys):
    assert main(["criteria"]) == 0 and "bn-scale" in capsys.readouterr().out
    assert main(["models"]) == 0 and "smallcnn-mnist5k" in capsys.readouterr().out


def test_bayes_svi_run_writes_posterior_and_keep_probabilities(tmp_path):
    import csv

    import arviz as az

    out = tmp_path / "bayes"
    assert main(["run", "--criterion", "bayes-svi", "--rounds", "2", "--svi-steps", "10", "--posterior-draws", "40",
                 "--out", str(out), *QUICK, "--epochs", "0.2"]) == 0
    for r in (1, 2):
        idata = az.from_netcdf(out / f"posterior_round{r}.nc")
        assert {"posterior", "svi_trace"} <= set(idata.groups())
        # round 1 fits the horseshoe; round 2's prior is round 1's carried posterior (no tau/lambda)
        names = set(idata.posterior.data_vars)
        assert {"s", "tau", "lambda"} <= names if r == 1 else "s" in names and not {"tau", "lambda"} & names
        # the default two independent SVI fits are two chains of 40 draws, with their ELBO traces
        assert idata.posterior["s"].shape[:2] == (2, 40) and idata.svi_trace["elbo"].shape == (2, 10)
        assert idata.posterior["layer_surviving"].shape[2] == idata.posterior["layer_rms_gate"].shape[2] > 1
    rows = list(csv.DictReader(open(out / "keep_probability_round2.csv")))
    assert list(rows[0]) == ["layer", "channel", "mean", "sd", "hdi_low", "hdi_high", "keep_probability",
                             "keep_probability_low", "keep_probability_high", "prune_probability_final",
                             "kept", "uncertain"]
    assert all(float(r["keep_probability_low"]) <= float(r["keep_probability"]) <= float(r["keep_probability_high"])
               for r in rows)
    assert all(0.0 <= float(r["keep_probability"]) <= 1.0 for r in rows)
    assert all(float(r["hdi_low"]) <= float(r["mean"]) <= float(r["hdi_high"]) for r in rows)
    rounds = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][1:]
    layer = rounds[-1]["layers"][0]
    assert layer["interval_low"] <= layer["expected_surviving"] <= layer["interval_high"] <= layer["channels"]


def test_default_run_directories_never_collide(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--criterion", "l1", "--rounds", "1", *QUICK, "--epochs", "0.1", "--test-subset", "64"]
    assert main(args) == 0 and main(args) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(name.startswith("run-") for name in runs)
    assert all((tmp_path / "runs" / name / "summary.json").is_file() for name in runs)


def test_trust_pickle_is_needed_for_files_with_python_objects(tmp_path, capsys):
    from fractions import Fraction

    from bayesprune.checkpoint import save_checkpoint
    from bayesprune.nets import Architecture, build_model

    arch = Architecture("smallcnn", 1, 10, 28)
    save_checkpoint(tmp_path / "plain.pt", build_model(arch), arch)
    ckpt = torch.load(tmp_path / "plain.pt", weights_only=True)
    ckpt["meta"]["ratio"] = Fraction(1, 3)  # a Python object that weights_only loading refuses
    torch.save(ckpt, tmp_path / "pickled.pt")
    assert main(["evaluate", str(tmp_path / "pickled.pt")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "pickled.pt"), "--trust-pickle"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["macs"] > 0


def test_compare_grid_writes_tables_and_resumes(tmp_path, capsys, monkeypatch):
    import csv

    from bayesprune import rounds

    calls = []
    real = rounds.run_pruning

    def counting(config, **options):
        calls.append((config.criterion, config.target_macs, config.seed))
        return real(config, **options)

    monkeypatch.setattr(rounds, "run_pruning", counting)
    args = ["compare", "--methods", "l1,random", "--target-macs", "0.6,0.4", "--seeds", "2", "--model", "smallcnn",
            "--data", "digits", "--rounds", "1", "--epochs", "0.1", "--train-subset", "128", "--test-subset", "64",
            "--quiet", "--device", "cpu", "--out", str(tmp_path / "cmp")]
    assert main(args) == 0
    assert len(calls) == 8
    rows = list(csv.DictReader(open(tmp_path / "cmp" / "results.csv")))
    assert len(rows) == 8 and {r["method"] for r in rows} == {"l1", "random"}
    assert all(float(r["macs_ratio"]) <= float(r["target"]) for r in rows)
    table = (tmp_path / "cmp" / "table.md").read_text()
    cells = [[c.strip() for c in line.strip("|").split("|")][1:] for line in table.splitlines()[2:]]
    for column in zip(*cells):  # per budget, the best accuracy is bold (every method that ties it)
        values = [float(c.strip("*").split(" ")[0]) for c in column]
        assert [c.startswith("**") for c in column] == [v == max(values) for v in values]
    assert (tmp_path / "cmp" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "cmp" / "cells" / "random__macs0.4__seed1.json").unlink()  # as if killed mid-grid
    assert main(args) == 0
    assert len(calls) == 9 and calls[-1] == ("random", 0.4, 1)  # only the missing cell ran again
    assert main([*args[:-1], str(tmp_path / "cmp"), "--epochs", "0.2"]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err


def test_allocation_defaults_to_the_criterions_own(tmp_path):
    from bayesprune.config import PruneConfig

    assert PruneConfig().resolved_allocation() == "global"  # bayes: its posterior sets the widths
    assert PruneConfig(criterion="l2").resolved_allocation() == "uniform"
    assert PruneConfig(criterion="l2", allocation="global").resolved_allocation() == "global"
    out = tmp_path / "run"
    assert main(["run", *QUICK, "--criterion", "l2", "--rounds", "1", "--out", str(out), "--no-report"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["allocation"] == "uniform"  # what ran


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "smallcnn", "--data", "digits", "--out", "{tmp}/a-file/x.pt"], "is a file, not a directory"),
    (["train", "--model", "smallcnn", "--data", "digits", "--out", "{tmp}/out/x.pt", "--epochs", "-1"],
     "--epochs must be >= 0"),
    (["train", "--model", "smallcnn", "--data", "digits", "--out", "{tmp}/out/x.pt", "--lr", "nan"],
     "--lr must be a finite number > 0"),
    (["train", "--model", "smallcnn", "--data", "digits", "--out", "{tmp}/out/x.pt", "--batch-size", "0"],
     "--batch-size must be >= 1"),
    (["compare", "--methods", "l2", "--out", "{tmp}/a-file/grid", "--epochs", "0"], "is a file, not a directory"),
    (["compare", "--methods", "l2", "--out", "{tmp}/out", "--seeds", "0"], "--seeds must be >= 1"),
    (["compare", "--methods", "l2", "--out", "{tmp}/out", "--lr", "inf"], "--lr must be a finite number > 0"),
    (["report", "{tmp}/out"], "not a bayesprune run directory"),
    (["evaluate", "{tmp}/out/missing.pt"], "does not exist"),
])
def test_every_command_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    (tmp_path / "a-file").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("bayesprune: error:"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
