"""Iterative Bayesian pruning: carried posteriors, predictions, annealing, reparameterization, expansion."""
import copy
import json
import math

import numpy as np
import pytest
import torch
from pyro import poutine
from torch import nn

from bayesprune.bayes import SVIConfig
from bayesprune.annealing import annealed_mask, temperature_schedule
from bayesprune.bayes.decision import keep_probabilities
from bayesprune.decision.selector import BudgetedSelector
from bayesprune.gates import ChannelGates
from bayesprune.bayes.network import GatedNetworkModel
from bayesprune.tracking import ChannelTracker, score_predictions
from bayesprune.checkpoint import load_checkpoint, save_checkpoint
from bayesprune.cli import main
from bayesprune.criteria.base import Calibration
from bayesprune.criteria.bayes import BayesGSM
from bayesprune.decision import CostModel
from bayesprune.groups import ChannelGraph, count_macs_params
from bayesprune.nets import Architecture, build_model
from bayesprune.nets.small_cnn import SmallCNN
from bayesprune.surgery import compensate, fold_gates, widen
from bayesprune.decision import RoundBudget

CPU = torch.device("cpu")


def _randomise_batchnorm(net: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
            m.weight.data.copy_(torch.randn(n, generator=generator))
            m.bias.data.copy_(torch.randn(n, generator=generator))
    return net.eval()


@torch.no_grad()
def test_reparameterization_with_nothing_pruned_is_the_identity():
    torch.manual_seed(0)
    net = _randomise_batchnorm(SmallCNN(1, 10, width=4))
    x = torch.randn(6, 1, 12, 12)
    with torch.enable_grad():
        graph = ChannelGraph(net, x[:1])
    gates = ChannelGates(graph)
    means = 0.5 + torch.rand(gates.num_channels)
    gates.values = means
    with gates:
        gated = net(x)  # the network at the gates' posterior mean, by hooks
    gates.values = None
    fold_gates(gates, means)
    assert torch.allclose(net(x), gated, atol=1e-5)  # folding the means preserves that function
    before = net(x)
    assert compensate(graph, {g.name: [] for g in graph.groups}, [(x, None)], "mean")["layers"] == 0
    fold_gates(gates, torch.ones(gates.num_channels))
    graph.prune({g.name: [] for g in graph.groups})
    assert torch.allclose(net(x), before, atol=1e-5)


class _LinearNext(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.relu, self.out = nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)

    def forward(self, x):
        return self.out(self.relu(self.hidden(x)))


class _ConvNextBN(nn.Module):
    """1x1 conv -> ReLU -> 1x1 conv without bias -> BN: compensation goes to BN's running mean."""

    def __init__(self):
        super().__init__()
        self.c1, self.relu = nn.Conv2d(2, 4, 1), nn.ReLU()
        self.c2, self.bn = nn.Conv2d(4, 3, 1, bias=False), nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.c2(self.relu(self.c1(x)))).mean((2, 3))


@pytest.mark.parametrize("make,shape,producer", [(_LinearNext, (5,), "hidden"), (_ConvNextBN, (2, 5, 5), "c1")])
def test_bias_compensation_is_exact_when_a_removed_channel_is_constant(make, shape, producer):
    torch.manual_seed(1)
    net = _randomise_batchnorm(make())
    layer = getattr(net, producer)
    with torch.no_grad():  # channel 2 outputs the constant relu(0.7) = 0.7 for every input
        layer.weight[2].zero_()
        layer.bias[2] = 0.7
    x = torch.randn(32, *shape)
    with torch.no_grad():
        reference = net(x)
    removal = {producer: [2]}
    plain = copy.deepcopy(net)
    ChannelGraph(plain, x[:1]).prune(removal)
    graph = ChannelGraph(net, x[:1])
    stats = compensate(graph, removal, [(x, None)], "mean")
    graph.prune(removal)
    with torch.no_grad():
        assert stats["layers"] == 1 and torch.allclose(net(x), reference, atol=1e-5)
        assert not torch.allclose(plain(x), reference, atol=1e-2)  # the cut alone is visibly wrong


class _ConvNext3x3(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.relu, self.c2 = nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        return self.c2(self.relu(self.c1(x))).flatten(1)


@pytest.mark.parametrize("make,shape,producer", [(_LinearNext, (5,), "hidden"), (_ConvNext3x3, (2, 6, 6), "c1")])
def test_least_squares_refit_recovers_a_duplicated_channel(make, shape, producer):
    """ThiNet-style refit: a removed channel equal to a kept one is reconstructed exactly
    (for the padded 3x3 consumer this also checks the patch layout against the weights)."""
    torch.manual_seed(2)
    net = make()
    layer = getattr(net, producer)
    with torch.no_grad():
        layer.weight[3] = layer.weight[0]
        layer.bias[3] = layer.bias[0]
    x = torch.randn(256, *shape)
    with torch.no_grad():
        reference = net(x)
    plain = copy.deepcopy(net)
    ChannelGraph(plain, x[:1]).prune({producer: [3]})
    graph = ChannelGraph(net, x[:1])
    compensate(graph, {producer: [3]}, [(x, None)], "lsq", ridge=1e-10)
    graph.prune({producer: [3]})
    with torch.no_grad():
        assert torch.allclose(net(x), reference, atol=1e-4)
        assert not torch.allclose(plain(x), reference, atol=1e-2)  # the cut alone loses channel 3


def test_annealed_masks_go_from_uniform_to_hard():
    p = np.array([0.02, 0.3, 0.5, 0.7, 0.99])
    hard = np.array([0.0, 0.0, 0.5, 1.0, 1.0])
    assert np.array_equal(annealed_mask(p, 0.0), hard)
    assert np.allclose(annealed_mask(p, 1e-3), hard, atol=1e-6)
    assert np.allclose(annealed_mask(p, 1e4), 0.5, atol=1e-3)
    assert np.allclose(annealed_mask(p, 1.0), p)  # T = 1: the keep probability itself
    # by hand: p = 0.7 at T = 0.5 is 0.7^2 / (0.7^2 + 0.3^2)
    assert annealed_mask(np.array([0.7]), 0.5)[0] == pytest.approx(0.49 / 0.58)
    assert temperature_schedule(3, 1.0, 0.5) == [1.0, 0.5, 0.0]


@pytest.mark.parametrize("name", ["smallcnn", "resnet20", "mobilenetv2"])
def test_net2wider_without_noise_preserves_outputs(name, tmp_path):
    torch.manual_seed(3)
    arch = Architecture(name, 1, 10, 16)
    net = _randomise_batchnorm(build_model(arch))
    x = torch.randn(4, 1, 16, 16)
    wide, wide_arch = widen(net, arch, 1.5, noise=0.0)
    wide.eval()
    with torch.no_grad():
        assert torch.allclose(wide(x), net(x), atol=1e-4 * net(x).abs().max().item())
    assert wide_arch.width == 1.5
    assert count_macs_params(wide, x[:1])[1] > 1.8 * count_macs_params(net, x[:1])[1]
    save_checkpoint(tmp_path / "wide.pt", wide, wide_arch)
    reloaded, reloaded_arch, _ = load_checkpoint(tmp_path / "wide.pt")
    with torch.no_grad():
        assert reloaded_arch.width == 1.5 and torch.allclose(reloaded.eval()(x), wide(x), atol=1e-6)
    noisy, _ = widen(net, arch, 1.5, noise=0.1)
    with torch.no_grad():
        assert not torch.allclose(noisy.eval()(x), net(x), atol=1e-6)


def _fitted_bayes(data, forgetting=0.25):
    torch.manual_seed(4)
    net = SmallCNN(1, 10, width=4).eval()
    inputs = data.test_x[:1]
    graph = ChannelGraph(net, inputs)
    criterion = BayesGSM(svi=SVIConfig(steps=5), draws=20, forgetting=forgetting)
    calibration = Calibration(data, CPU, 64, 2)
    criterion.prepare(net, graph, calibration)
    macs = count_macs_params(net, inputs)[0]
    return net, inputs, graph, criterion, calibration, macs


def test_posterior_carried_to_round_2_is_round_1_posterior_tempered(tiny_mnist):
    net, inputs, graph, criterion, calibration, macs = _fitted_bayes(tiny_mnist, forgetting=0.25)
    removal = criterion.select(graph, CostModel.build(graph), RoundBudget(0.6 * macs, 0.6 * macs, "macs", "uniform"))
    kept = criterion.posterior.decision
    loc, scale = criterion.gate_loc[kept], criterion.gate_scale[kept]
    criterion.after_cut(removal)  # nothing folded: the prior keeps the gate's own units
    assert np.allclose(criterion.carried.loc.numpy(), loc, rtol=1e-6)
    assert np.allclose(criterion.carried.scale.numpy(), scale / math.sqrt(0.25), rtol=1e-5)
    fold_gates(ChannelGates(graph), criterion.reparameterization())  # as the engine does before the cut
    graph.prune(removal)
    criterion.after_cut(removal)
    graph2 = ChannelGraph(net, inputs)
    gates2 = ChannelGates(graph2)
    assert gates2.num_channels == kept.sum()
    model = GatedNetworkModel(net, gates2, criterion.carried, calibration.data, CPU, 16)
    site = poutine.trace(model.model).get_trace().nodes["s"]
    assert torch.allclose(site["fn"].loc, torch.ones(int(kept.sum())))
    expected = scale / np.abs(loc) / math.sqrt(0.25)  # N(m, v^2)^rho in relative coordinates
    assert np.allclose(site["fn"].scale.numpy(), expected, rtol=1e-5)
    assert {"tau", "lambda"}.isdisjoint(poutine.trace(model.model).get_trace().nodes)


def test_no_forgetting_means_refit_with_the_gsm_prior(tiny_mnist):
    net, inputs, graph, criterion, _, macs = _fitted_bayes(tiny_mnist, forgetting=0.0)
    removal = criterion.select(graph, CostModel.build(graph), RoundBudget(0.6 * macs, 0.6 * macs, "macs", "uniform"))
    criterion.after_cut(removal)
    assert criterion.carried is None


def test_final_budget_predictions_are_a_subset_of_this_rounds_keeps(tiny_mnist):
    net, inputs, graph, criterion, _, macs = _fitted_bayes(tiny_mnist)
    cost = CostModel.build(graph)
    group_of_channel = criterion.gates.layer_of_channel.numpy()
    effect = criterion.effect_draws()
    now = keep_probabilities(effect, BudgetedSelector(cost, group_of_channel, 0.8 * macs, "macs", 0.9, "uniform"))
    final = keep_probabilities(effect, BudgetedSelector(cost, group_of_channel, 0.5 * macs, "macs", 0.9, "uniform"))
    assert (final[0] <= now[0]).all() and (final[1] <= now[1]).all()
    criterion.select(graph, cost, RoundBudget(0.8 * macs, 0.5 * macs, "macs", "uniform", 0.9))
    assert np.allclose(criterion.prune_probability(), 1.0 - final[1])


def test_prediction_scores_by_hand():
    tracker = ChannelTracker.__new__(ChannelTracker)
    tracker.alive = {"a": np.arange(3), "b": np.arange(2)}
    ids = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    tracker.remove({"a": [1], "b": [0]})
    assert tracker.survivors() == {("a", 0), ("a", 2), ("b", 1)}
    scores = score_predictions(ids, np.array([0.2, 0.9, 0.1, 0.6, 0.3]), tracker.survivors())
    assert scores["prediction_auroc"] == 1.0  # both pruned channels ranked above the kept ones
    assert scores["prediction_brier"] == pytest.approx((0.04 + 0.01 + 0.01 + 0.16 + 0.09) / 5)
    swapped = score_predictions(ids, np.array([0.9, 0.2, 0.1, 0.6, 0.3]), tracker.survivors())
    # pruned 0.2 beats kept 0.1 only; pruned 0.6 beats 0.1 and 0.3: 3 of 6 (pruned, kept) pairs right
    assert swapped["prediction_auroc"] == pytest.approx(3 / 6)


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
