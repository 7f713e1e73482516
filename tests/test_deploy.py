"""Export (ONNX, TorchScript) after a cut for every architecture, latency tables and budgets."""
import json

import numpy as np
import pytest
import torch

from bayesprune.checkpoint import save_checkpoint
from bayesprune.cli import main
from bayesprune.data import ImageData
from bayesprune.decision import CostModel
from bayesprune.decision.allocation import allocate
from bayesprune.decision.latency import LatencyCostModel, LatencyTable, LayerTable
from bayesprune.deploy.export import ExportRequest, export
from bayesprune.deploy.floor import Floor, quotient_ceiling
from bayesprune.deploy.timing import time_interleaved
from bayesprune.groups import ChannelGraph
from bayesprune.nets import ARCHITECTURES, Architecture, build_model
from helpers import Chain, fake_ms as _fake_ms

pytest.importorskip("onnxruntime", reason="the [deploy] extra (onnx, onnxscript, onnxruntime) is not installed")


def _images(channels: int, size: int, classes: int, n: int = 64) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, channels, size, size, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return ImageData("synthetic", x, y, x, y, classes, normalisation={"scale": 255.0, "mean": [0.0] * channels,
                                                                       "std": [1.0] * channels})


def _pruned_checkpoint(name: str, path) -> Architecture:
    arch = Architecture(name, 3, 10, 32)
    model = build_model(arch).eval()
    graph = ChannelGraph(model, torch.randn(1, 3, 32, 32))
    removal = {g.name: list(range(0, g.size, 4))[: g.size // 4] for g in graph.groups}  # a quarter of each group
    history = graph.prune(removal)
    for module in model.modules():  # non-trivial BatchNorm statistics, so that eval mode matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    # logits of a trained network's size (|logit| <= 10): an untrained ResNet-110's grow to thousands,
    # where float32 rounding alone exceeds 1e-4
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        scale = model(_images(3, 32, 10).test_x).abs().max() / 10
        classifier.weight.div_(scale)
        classifier.bias.div_(scale)
    save_checkpoint(path, model, arch, history, {"data": "synthetic"})
    return arch


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_onnx_export_of_every_architecture_after_a_cut_matches_pytorch(tmp_path, name):
    arch = _pruned_checkpoint(name, tmp_path / "model.pt")
    card = export(ExportRequest(str(tmp_path / "model.pt"), "onnx", check_images=16), data=_images(3, 32, 10))
    assert card["max_abs_difference_vs_pytorch"] < 1e-4 and (tmp_path / "model.onnx").is_file()
    assert card["input"]["shape"] == ["batch", 3, 32, 32] and card["num_classes"] == arch.num_classes
    assert json.loads((tmp_path / "model.onnx.json").read_text())["macs"] == card["macs"]
    import onnxruntime as ort  # runs without bayesprune: plain onnxruntime, any batch size

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        out = session.run(None, {session.get_inputs()[0].name: np.zeros((batch, 3, 32, 32), np.float32)})[0]
        assert out.shape == (batch, 10)


def test_torchscript_export_reloads_without_bayesprune(tmp_path):
    _pruned_checkpoint("smallcnn", tmp_path / "model.pt")
    card = export(ExportRequest(str(tmp_path / "model.pt"), "torchscript", check_images=16), data=_images(3, 32, 10))
    module = torch.jit.load(str(tmp_path / "model.torchscript.pt"))
    assert module(torch.zeros(3, 3, 32, 32)).shape == (3, 10)
    assert card["format"] == "torchscript" and card["max_abs_difference_vs_pytorch"] < 1e-4


@pytest.mark.parametrize("args, message", [
    (["export", "{tmp}/plain.pt"], "is not a bayesprune checkpoint"),
    (["export", "{tmp}/missing.pt"], "does not exist"),
    (["export", "smallcnn-mnist5k", "--format", "tflite"], "unknown --format 'tflite'"),
    (["export", "smallcnn-mnist5k", "--data", "digits", "--out", "{tmp}/x.onnx"], "takes 1-channel 28x28 images"),
    (["export", "smallcnn-mnist5k", "--out", "{tmp}"], "is a directory"),
    (["latency", "{tmp}/plain.pt"], "is not a bayesprune checkpoint"),
    (["latency", "smallcnn-mnist5k", "--runtimes", "tensorrt"], "unknown --runtimes 'tensorrt'"),
    (["latency", "smallcnn-mnist5k", "--batch-sizes", "0"], "--batch-sizes must be >= 1"),
])
def test_deploy_commands_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    torch.save({"weights": torch.ones(3)}, tmp_path / "plain.pt")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("bayesprune: error:"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.pt"]


def test_export_and_latency_commands_on_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--rounds", "1", "--epochs", "0", "--train-subset", "256", "--test-subset", "64",
                 "--criterion", "l2", "--quiet", "--no-report", "--out", str(out)]) == 0
    assert main(["export", str(out / "model.pt"), "--check-images", "8"]) == 0
    card = json.loads((out / "model.onnx.json").read_text())
    assert card["base_model"] == "shipped:smallcnn-mnist5k" and card["data"] == "mnist5k"
    assert card["input"]["normalisation"]["scale"] == 255.0 and len(card["input"]["normalisation"]["mean"]) == 1
    capsys.readouterr()
    assert main(["latency", str(out / "model.pt"), "--repeats", "3", "--warmup", "1", "--batch-sizes", "1,2",
                 "--out", str(tmp_path / "latency.json")]) == 0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "per layer" in printed
    result = json.loads((tmp_path / "latency.json").read_text())
    assert {(r["runtime"], r["batch"]) for r in result["whole"]} == {(rt, b) for rt in ("torch", "onnxruntime")
                                                                      for b in (1, 2)}
    assert result["counts"]["pruned"]["macs"] < result["counts"]["base"]["macs"]
    # the floor network (every group at one channel) is timed with them; each row's quotient and its ceiling
    counts = result["counts"]
    assert counts["floor"]["macs"] < counts["pruned"]["macs"] and "quotient" in printed and "ceiling" in printed
    macs_ratio = counts["pruned"]["macs"] / counts["base"]["macs"]
    for row in result["whole"]:
        speedup = row["base"]["median_ms"] / row["pruned"]["median_ms"]
        assert row["quotient"] == pytest.approx(speedup * macs_ratio)
        floor = Floor(counts["floor"]["macs"] / counts["base"]["macs"],
                      row["floor"]["median_ms"] / row["base"]["median_ms"])
        assert row["quotient_ceiling"] == pytest.approx(quotient_ceiling(macs_ratio, floor))
    assert all(set(layer) & {"base", "pruned"} and "floor" not in layer for layer in result["per_layer"])
    assert main(["latency", str(out / "model.pt"), "--repeats", "3", "--warmup", "1", "--batch-sizes", "1",
                 "--runtimes", "torch", "--no-per-layer", "--no-floor", "--out", str(tmp_path / "no-floor.json")]) == 0
    no_floor = json.loads((tmp_path / "no-floor.json").read_text())
    assert "floor" not in no_floor["counts"] and "quotient_ceiling" not in no_floor["whole"][0]
    assert no_floor["whole"][0]["quotient"] > 0


# --- latency tables ----------------------------------------------------------------------------
def test_latency_table_interpolates_bilinearly_and_clamps():
    table = LayerTable("conv", np.array([1.0, 3.0]), np.array([2.0, 4.0]), np.array([[1.0, 2.0], [3.0, 5.0]]))
    assert table.at(2, 3) == pytest.approx((1 + 2 + 3 + 5) / 4)
    assert table.at(1, 2) == 1.0 and table.at(3, 4) == 5.0
    assert table.at(2, 2) == pytest.approx(2.0) and table.at(3, 3) == pytest.approx(4.0)
    assert table.at(0, 100) == 2.0  # clamped to the grid
    np.testing.assert_allclose(table.at(np.array([1, 3]), np.array([4, 2])), [2.0, 3.0])
    restored = LayerTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert restored.at(2, 3) == table.at(2, 3)


def test_latency_budget_with_a_fake_clock_gives_the_hand_computed_widths():
    """Chain: c1 1->4, c2 4->6, c3 6->2 cost 4 + 24 + 12 = 40 ms, the rest 60 ms. At 90% (90 ms) the
    layers may take 30 ms; uniform widths remove the smallest equal share that gets there: 1/6 of
    each group keeps (4, 5) = 4 + 20 + 10 = 34 ms; 1/4 keeps (3, 5) = 3 + 15 + 10 = 28 ms."""
    net = Chain()
    example = torch.randn(1, 1, 8, 8)
    table = LatencyTable.measure(net, example, batch=4, grid=7, time_layer=_fake_ms, time_model=_fake_ms)
    assert table.whole_ms == 100.0 and table.rest_ms == pytest.approx(60.0) and table.rest_ms_per_element == 0.0
    cost_model = LatencyCostModel.build(ChannelGraph(net, example), table)
    assert cost_model.full("latency") == pytest.approx(100.0)
    assert cost_model.full("macs") == CostModel.build(ChannelGraph(net, example)).full("macs")
    scores = {name: torch.arange(size, dtype=torch.float64) for name, size in zip(cost_model.names, cost_model.sizes)}
    removal = allocate(scores, cost_model, 90.0, "latency", "uniform")
    assert {name: len(r) for name, r in removal.items()} == {"c1": 1, "c2": 1}
    # the fitted coefficients every allocation reads are exact here (the fake clock is bilinear)
    keep = np.array([3.0, 5.0]) if cost_model.names == ["c1", "c2"] else np.array([5.0, 3.0])
    assert CostModel.cost(cost_model, keep, "latency") == pytest.approx(cost_model.cost(keep, "latency"))


def test_the_rest_of_the_network_is_fitted_as_overhead_plus_elementwise_work():
    """A fake clock whose whole network takes its layers + 10 ms + 0.001 ms per BatchNorm output
    element (8 x 8 per channel here): the fit over uniform cuts recovers both parts."""
    from helpers import planted_network

    def clock(module, x):
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            return _fake_ms(module, x)
        bn = sum(m.num_features * 64 for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))
        return _fake_ms(module, x) - 60.0 + 10.0 + 0.001 * bn

    net, data = planted_network(dead_in_first=0)
    table = LatencyTable.measure(net, data.test_x[:1], batch=2, grid=3, time_layer=clock, time_model=clock)
    assert table.rest_ms == pytest.approx(10.0) and table.rest_ms_per_element == pytest.approx(0.001)
    cost_model = LatencyCostModel.build(ChannelGraph(net, data.test_x[:1]), table)
    half = cost_model.sizes // 2  # 4 + 4 channels: layers 1*4 + 4*4 + 4*3 ms, BatchNorms 8 * 64 elements
    assert cost_model.cost(half, "latency") == pytest.approx(4 + 16 + 12 + 10.0 + 0.001 * 8 * 64)


def test_run_with_a_latency_budget_records_its_table_and_meets_it(tmp_path, monkeypatch):
    import bayesprune.decision.latency as latency

    monkeypatch.setattr(latency, "time_call_ms", _fake_ms)
    out = tmp_path / "run"
    assert main(["run", "--target-latency", "0.7", "--criterion", "l2", "--rounds", "2", "--epochs", "0",
                 "--latency-feedback", "0",  # the table alone (tests/test_latency_feedback.py: with the clock)
                 "--train-subset", "256", "--test-subset", "64", "--quiet", "--no-report", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "measured_latency_fraction" not in summary["budget"]
    table = LatencyTable.from_dict(json.loads((out / "latency_table.json").read_text()))
    assert summary["budget"]["kind"] == "latency" and table.rest_ms == 60.0
    layers = 1 * 32 + 32 * 32 + 32 * 64 + 64 * 64 + 64 * 10  # the shipped small CNN's conv and linear layers
    assert summary["base"]["latency"] == pytest.approx(layers + 60.0) == table.whole_ms
    assert summary["final_ratio"]["latency"] <= 0.7 + 1e-9 and summary["final"]["latency"] <= 0.7 * table.whole_ms


def test_interleaved_timing_with_a_fake_clock():
    clock = {"now": 0.0}

    def slow():
        clock["now"] += 0.002

    def fast():
        clock["now"] += 0.001

    timings = time_interleaved({"slow": slow, "fast": fast}, warmup=2, repeats=5, timer=lambda: clock["now"])
    assert timings["slow"].median_ms == pytest.approx(2.0) and timings["fast"].median_ms == pytest.approx(1.0)
    assert timings["slow"].calls == 5

