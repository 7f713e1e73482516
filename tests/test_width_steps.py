"""--round-to auto: widths at the ends of measured latency steps (bayesprune.decision.width_steps)."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from bayesprune.cli import main
from bayesprune.decision.allocation import aligned, removable_counts
from bayesprune.decision.width_steps import WidthSteps, step_ends
from bayesprune.groups import ChannelGraph
from helpers import TwoLayers


def test_step_ends_keep_the_widest_width_of_each_level():
    # widths 1-4 take 1 ms, 5-8 take 2 ms (with 1% noise): only 4 and 8 are worth keeping
    assert step_ends(np.array([1.0, 1.01, 0.99, 1.0, 2.0, 2.02, 1.98, 2.0])) == (4, 8)
    # a width slower than a wider one is never kept (the envelope); a steady fall keeps widths
    # whose time is at least the tolerance (5%) below the last kept
    assert step_ends(np.array([1.0, 5.0, 2.0, 2.0])) == (1, 4)
    assert step_ends(np.array([100.0, 101.0, 102.0, 103.0, 104.0])) == (5,)  # 4% in all: no step
    assert step_ends(np.array([100.0, 101.0, 102.0, 103.0, 104.0]), tolerance=0.03) == (1, 5)  # 104 -> 101: 2.9%
    assert step_ends(np.array([50.0, 75.0, 100.0])) == (1, 2, 3)


def test_align_rounds_kept_channels_up_to_a_measured_width():
    steps = WidthSteps(("a", "b"), ((4, 8), (8, 16)), ((),) * 2, batch=1)
    # a keeps 5 -> 8 (removes 0), b keeps 6 -> 8 (removes 8)
    assert steps.align(np.array([8, 16]), np.array([3, 10])).tolist() == [0, 8]
    assert aligned(np.array([8, 16]), np.array([4, 8]), steps).tolist() == [4, 8]  # already on steps
    # after a cut to 6 channels, a keeps 4 or all 6 (its size), never a measured width above it
    assert steps.align(np.array([6, 16]), np.array([1, 0])).tolist() == [0, 0]
    assert steps.align(np.array([6, 16]), np.array([2, 0])).tolist() == [2, 0]
    assert removable_counts(np.array([8, 16]), 0.9, steps).tolist() == [4, 8]  # 7 and 14 may go: keep 4, 8
    with pytest.raises(ValueError, match="measured for 2 groups"):
        steps.align(np.array([8]), np.array([1]))


def _staircase_ms(module, _x) -> float:
    """A fake clock with steps of 4 channels: a layer costs ceil(in / 4) * ceil(out / 4) ms."""
    if isinstance(module, nn.Linear):
        return math.ceil(module.in_features / 4) * math.ceil(module.out_features / 4)
    return math.ceil(module.in_channels / 4) * math.ceil(module.out_channels / 4)


def test_measured_steps_of_a_staircase_clock():
    net = TwoLayers()
    graph = ChannelGraph(net, torch.randn(1, 1, 8, 8))
    steps = WidthSteps.measure(graph, torch.randn(1, 1, 8, 8), batch=2, time_layer=_staircase_ms)
    assert steps.allowed == ((4, 8), (4, 8))
    # group 1 (c1's output, c2's input): widths 1-4 cost 1*1 + 1*2, widths 5-8 cost 1*2 + 2*2
    assert steps.ms[0] == (3.0,) * 4 + (6.0,) * 4
    again = WidthSteps.from_dict(json.loads(json.dumps(steps.to_dict())))
    assert again == steps


def test_run_with_round_to_auto_keeps_measured_widths_and_resumes_with_them(tmp_path, monkeypatch):
    import bayesprune.decision.latency as latency

    monkeypatch.setattr(latency, "time_call_ms", _staircase_ms)
    out = tmp_path / "run"
    args = ["run", "--round-to", "auto", "--allocation", "uniform", "--criterion", "l2", "--target-macs", "0.4",
            "--rounds", "2", "--epochs", "0", "--train-subset", "256", "--test-subset", "64", "--quiet",
            "--no-report", "--out", str(out)]
    assert main(args) == 0
    steps = WidthSteps.from_dict(json.loads((out / "width_steps.json").read_text()))
    assert all(widths[-1] % 4 == 0 and all(w % 4 == 0 for w in widths) for widths in steps.allowed)
    rounds = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rounds if r["event"] == "round"][-1]  # the final network's widths are at step ends
    for name, (_before, after) in last["widths"].items():
        assert after in steps.allowed[steps.names.index(name)], (name, after)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_ratio"]["macs"] <= 0.4 + 1e-9
    assert json.loads((out / "config.json").read_text())["config"]["round_to"] == "auto"


@pytest.mark.parametrize("args, message", [
    (["--round-to", "eight"], "--round-to must be a whole number >= 1 or auto"),
    (["--round-to", "auto", "--allocation", "global"], "--round-to auto needs --allocation uniform"),
    (["--round-to", "0"], "--round-to must be >= 1"),
])
def test_bad_round_to_is_one_line_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", *args, "--criterion", "l2", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_rounded_uniform_cut_gives_back_steps_while_the_budget_allows():
    from bayesprune.decision import CostModel
    from bayesprune.decision.allocation import removable_counts, uniform_counts
    from helpers import Chain

    # Chain on 8x8: MACs = 576 k1 + 576 k1 k2 + 128 k2 + 128 (c3's bias) for k1 <= 4, k2 <= 6 kept
    cost_model = CostModel.build(ChannelGraph(Chain(), torch.randn(1, 1, 8, 8)))
    sizes = cost_model.sizes
    assert sizes.tolist() == [6, 4]  # c2's group, then c1's
    full = cost_model.cost(sizes, "macs")
    assert full == 576 * 4 + 576 * 24 + 128 * 6 + 128
    target = 0.6 * full
    cap = removable_counts(sizes, 0.9, 2)
    # keeping even widths, the uniform cut jumps from (k1, k2) = (4, 4) (12,160 MACs, over) to (2, 4)
    # (6,400); giving back c2's step reaches (2, 6): 8,960 MACs, and (4, 6) would be over
    counts = uniform_counts(cost_model, target, "macs", cap, round_to=2)
    assert counts.tolist() == [0, 2]
    assert cost_model.cost(sizes - counts, "macs") == 576 * 2 + 576 * 12 + 128 * 6 + 128 <= target


def test_a_latency_table_is_measured_at_the_step_widths():
    """With the steps, each layer's grid holds the widths a rounded cut keeps, so the table is exact
    there; a coarse grid alone interpolates across the step (TwoLayers: c1 1->8, c2 8->8, fc 8->3)."""
    from bayesprune.decision.latency import LatencyTable

    net, example = TwoLayers(), torch.randn(1, 1, 8, 8)
    graph = ChannelGraph(net, example)
    steps = WidthSteps(tuple(g.name for g in graph.groups), ((4, 8), (4, 8)), ((),) * 2, batch=2)
    coarse = LatencyTable.measure(net, example, batch=2, grid=2, time_layer=_staircase_ms,
                                  time_model=lambda model, x: 100.0)
    stepped = LatencyTable.measure(net, example, batch=2, grid=2, time_layer=_staircase_ms,
                                   time_model=lambda model, x: 100.0, steps=steps)
    assert coarse.layers["c2"].in_widths.tolist() == [1.0, 8.0]
    assert stepped.layers["c2"].in_widths.tolist() == stepped.layers["c2"].out_widths.tolist() == [1.0, 4.0, 8.0]
    assert stepped.layers["fc"].in_widths.tolist() == [1.0, 4.0, 8.0] and stepped.layers["fc"].out_widths.tolist() \
        == [1.0, 3.0]  # fc writes the classes: no group
    assert stepped.layers["c2"].at(4, 4) == 1.0  # ceil(4 / 4) * ceil(4 / 4), measured
    # the coarse grid interpolates between (1, 1) 1 ms, (1, 8) and (8, 1) 2 ms, (8, 8) 4 ms at t = 3/7 each way
    t = 3 / 7
    assert coarse.layers["c2"].at(4, 4) == pytest.approx((1 - t) ** 2 + 2 * 2 * t * (1 - t) + 4 * t * t)  # 2.04


def _staircase_network_ms(module, x) -> float:
    """:func:`_staircase_ms` for a layer; a whole network: its layers plus 20 ms for the rest."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return _staircase_ms(module, x)
    return 20.0 + sum(_staircase_ms(m, x) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_run_with_a_latency_budget_and_round_to_auto_keeps_step_widths(tmp_path, monkeypatch):
    import bayesprune.decision.latency as latency

    monkeypatch.setattr(latency, "time_call_ms", _staircase_network_ms)
    out = tmp_path / "run"
    assert main(["run", "--target-latency", "0.6", "--round-to", "auto", "--allocation", "uniform", "--criterion",
                 "l2", "--rounds", "2", "--epochs", "0", "--train-subset", "256", "--test-subset", "64", "--quiet",
                 "--no-report", "--out", str(out)]) == 0
    steps = WidthSteps.from_dict(json.loads((out / "width_steps.json").read_text()))
    table = json.loads((out / "latency_table.json").read_text())
    writers = {layer["name"]: layer for layer in table["layers"] if layer["name"] in steps.names}
    assert writers  # the conv that produces a group is named as the group
    for name, layer in writers.items():  # every step width of a group is on its producer's grid
        assert set(steps.allowed[steps.names.index(name)]) <= set(layer["out_widths"])
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert all(after in steps.allowed[steps.names.index(name)] for name, (_, after) in last["widths"].items())
    assert json.loads((out / "summary.json").read_text())["final_ratio"]["latency"] <= 0.6 + 1e-9
