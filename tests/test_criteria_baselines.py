"""The classic point-estimate baselines (issue 5) against cases computed by hand."""
import math

import numpy as np
from types import SimpleNamespace

import pytest
import torch
import torch_pruning as tp
from torch import nn

from bayesprune.gates import ChannelGates
from bayesprune.criteria import make_criterion
from bayesprune.criteria.base import Calibration
from bayesprune.groups import ChannelGraph
from bayesprune.nets import Architecture, build_model


class OneByOne(nn.Module):
    """1x1 conv (cin -> 3) [-> BN] -> ReLU -> 1x1 conv (3 -> 2) -> mean -> linear."""

    def __init__(self, cin=1, bn=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 3, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(3) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(3, 2, 1, bias=False)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.conv2(torch.relu(self.bn1(self.conv1(x)))).mean((2, 3)))


def _net(filters, cin=1, bn=False):
    net = OneByOne(cin, bn).eval()
    with torch.no_grad():
        net.conv1.weight.copy_(torch.tensor(filters, dtype=torch.float32).view(3, cin, 1, 1))
    return net


def _scores(name, net, x, **prepare):
    graph = ChannelGraph(net, x[:1])
    criterion = make_criterion(name)
    if criterion.needs_data:
        labels = torch.zeros(len(x), dtype=torch.long)
        criterion.prepare(net, graph, SimpleNamespace(batches=lambda: iter([(x, labels)])))
    group = next(g for g in graph.groups if g.root is net.conv1)
    return criterion(group.tp_group)


def test_fpgm_scores_are_total_distances_and_the_median_goes_first():
    net = _net([1.0, -3.0, 0.5])
    scores = _scores("fpgm", net, torch.randn(1, 1, 3, 3))
    # |1+3| + |1-0.5| = 4.5; 4 + 3.5 = 7.5; 0.5 + 3.5 = 4.0: filter 2 is nearest the median
    assert scores.tolist() == pytest.approx([4.5, 7.5, 4.0])


def test_lamp_by_hand():
    net = _net([1.0, -3.0, 0.5])
    scores = _scores("lamp", net, torch.randn(1, 1, 3, 3))
    # squared norms 1, 9, 0.25; ascending 0.25, 1, 9: 0.25/10.25, 1/10, 9/9
    assert scores.tolist() == pytest.approx([0.1, 1.0, 0.25 / 10.25])


def test_apoz_on_known_activations():
    x = torch.tensor([-1.0, 2.0, -3.0, 4.0, 5.0, -6.0, 7.0, -8.0, 9.0]).view(1, 1, 3, 3)  # 4 negative
    scores = _scores("apoz", _net([1.0, -3.0, 0.5]), x)
    assert scores.tolist() == pytest.approx([1 - 4 / 9, 1 - 5 / 9, 1 - 4 / 9])


def test_hrank_on_feature_maps_of_known_rank():
    u, v = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 0.0, 2.0, 1.0])
    rank_one = torch.outer(u, v)
    other = torch.eye(4) * 5.0  # rank 4, non-negative
    x = torch.stack([rank_one, other]).unsqueeze(0)  # (1, 2, 4, 4)
    # channel 0 = rank-one map, channel 1 = rank_one + other (full rank), channel 2 = -rank_one -> ReLU 0
    scores = _scores("hrank", _net([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]], cin=2), x)
    assert scores.tolist() == [1.0, 4.0, 0.0]


def test_chip_duplicate_channels_are_less_independent():
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    x = torch.stack([a, b]).unsqueeze(0)
    # rows of A: a, b, a (a orthogonal to b). ||A||_* = sqrt(2) + 1; without a row a: 2; without b: sqrt(2)
    scores = _scores("chip", _net([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], cin=2), x)
    assert scores.tolist() == pytest.approx([math.sqrt(2) - 1, 1.0, math.sqrt(2) - 1])


def test_taylor_is_the_squared_gradient_of_the_loss_wrt_a_channel_gate():
    torch.manual_seed(0)
    net = _net([1.0, -3.0, 0.5], bn=True)
    with torch.no_grad():
        net.bn1.weight.copy_(torch.tensor([0.7, -1.2, 0.4]))
        net.bn1.bias.copy_(torch.tensor([0.1, 0.3, -0.2]))
    x, y = torch.randn(8, 1, 3, 3), torch.randint(0, 2, (8,))
    graph = ChannelGraph(net, x[:1])
    criterion = make_criterion("taylor")
    criterion.prepare(net, graph, SimpleNamespace(batches=lambda: iter([(x, y)])))
    index = next(i for i, g in enumerate(graph.groups) if g.root is net.conv1)
    scores = criterion(graph.groups[index].tp_group)
    # independent route: d loss / d s_c for a gate s_c = 1 after the BatchNorm, squared
    gates = ChannelGates(graph)
    s = torch.ones(gates.num_channels, requires_grad=True)
    gates.values = s
    with gates:
        nn.functional.cross_entropy(net(x), y).backward()
    assert scores.tolist() == pytest.approx((s.grad[gates.group_slice(index)] ** 2).tolist(), rel=1e-5)


@pytest.mark.parametrize("name", ["apoz", "taylor", "hrank", "chip", "fpgm", "lamp", "thinet", "obs", "slimming",
                                  "foad", "fpum"])
@pytest.mark.parametrize("arch", ["resnet20", "vgg16", "mobilenetv2"])
def test_baselines_score_coupled_and_depthwise_groups(name, arch, mnist5k):
    if (name, arch) == ("chip", "mobilenetv2"):
        pytest.skip("CHIP is one SVD per channel: 40 s on MobileNetV2's 1280-channel head; VGG/ResNet cover it")
    if (name, arch) == ("obs", "vgg16"):
        pytest.skip("obs inverts VGG's 4,609-column patch Gram matrices (about a minute); ResNet's coupled and "
                    "MobileNet's depthwise groups cover it")
    torch.manual_seed(0)
    net = build_model(Architecture(arch, 1, 10, 16)).eval()
    data = mnist5k.subset(train=32, test=4)
    data.train_x = nn.functional.interpolate(data.train_x, size=16)
    graph = ChannelGraph(net, data.train_x[:1])
    criterion = make_criterion(name)
    if criterion.needs_data:
        criterion.prepare(net, graph, Calibration(data, torch.device("cpu"), 16, 1))
    scores = criterion.score(graph)
    assert all(len(scores[g.name]) == g.size and torch.isfinite(scores[g.name]).all() for g in graph.groups)


def test_thinet_finds_the_subset_that_reconstructs_exactly():
    x = torch.rand(4, 1, 3, 3) + 0.1  # positive: the ReLU passes everything
    net = _net([1.0, 1.0, 2.0])  # maps x, x, 2x
    with torch.no_grad():  # channels 0 and 1 cancel in every output; channel 2 is the largest term
        net.conv2.weight.copy_(torch.tensor([[1.0, -1.0, 3.0], [2.0, -2.0, 3.0]]).view(2, 3, 1, 1))
    scores = _scores("thinet", net, x)
    assert scores.tolist() == [0.0, 1.0, 2.0]  # removing {0, 1} leaves every output unchanged


def test_obs_removes_a_duplicated_channel_first_then_the_cheapest_after_the_refit():
    x = torch.rand(8, 2, 3, 3) + 0.1  # positive: the ReLU passes everything
    net = _net([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], cin=2)  # channels: x0, x0 (a duplicate), x1
    with torch.no_grad():  # channel 2 matters least to the output; 0 and 1 carry most of it
        net.conv2.weight.copy_(torch.tensor([[1.0, 2.0, 0.1], [0.0, 1.0, 0.1]]).view(2, 3, 1, 1))
    scores = _scores("obs", net, x)
    # one of the twins costs nothing once the other absorbs its weights (ThiNet, which prices the cut
    # before any refit, removes channel 2 first); then channel 2 (weights 0.1) is cheaper than the
    # surviving twin, which now carries the weights of both (3, 1)
    assert scores[2] == 1.0 and sorted(scores[:2].tolist()) == [0.0, 2.0]
    assert _scores("thinet", net, x)[2] == 0.0


def test_obs_greedy_order_is_the_one_least_squares_refits_give():
    from bayesprune.criteria.obs import greedy_refit_order

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))  # correlated inputs, 5 channels of 1 column
    rows[:, 3] = 0.7 * rows[:, 0] - 0.2 * rows[:, 1] + 0.01 * rng.normal(size=200)  # nearly a combination
    weight = rng.normal(size=(3, 5))
    design = np.concatenate([rows, np.ones((200, 1))], 1)
    problem = [np.concatenate([weight, np.zeros((3, 1))], 1), np.linalg.inv(design.T @ design)]
    def consumers():  # the problem is updated in place: a fresh copy per pass
        return [(np.arange(5), np.arange(5)[:, None], *[a.copy() for a in problem])]

    order, refit = greedy_refit_order(5, consumers())  # one channel per step

    def refit_error(kept):  # independent route: lstsq of the full output on the kept columns and a 1
        columns = design[:, list(kept) + [5]]
        target = rows @ weight.T
        residual = target - columns @ np.linalg.lstsq(columns, target, rcond=None)[0]
        return float((residual ** 2).sum())

    kept, expected = set(range(5)), []
    for _ in range(5):
        chosen = min(kept, key=lambda c: refit_error(kept - {c}))
        expected.append(chosen)
        kept.discard(chosen)
    assert np.argsort(order).tolist() == expected
    assert expected[0] in (0, 1, 3)  # one of the three nearly dependent channels goes first
    # the recorded error of each prefix is the refit's (sequential OBS updates = joint least squares)
    prefixes = [refit_error(set(range(5)) - set(expected[:k])) for k in range(6)]
    assert refit.tolist() == pytest.approx(prefixes, rel=1e-6, abs=1e-9)
    # two channels per update: exact at the updates' ends, linear inside
    batched, refit2 = greedy_refit_order(5, consumers(), steps=3)
    goes = np.argsort(batched).tolist()
    ends = {k: refit_error(set(range(5)) - set(goes[:k])) for k in (0, 2, 4, 5)}
    assert [refit2[k] for k in ends] == pytest.approx(list(ends.values()), rel=1e-6, abs=1e-9)
    assert refit2[1] == pytest.approx((refit2[0] + refit2[2]) / 2)
    assert refit2[3] == pytest.approx((refit2[2] + refit2[4]) / 2)


def test_slimming_adds_the_l1_subgradient_to_the_scales(mnist5k):
    data = mnist5k.subset(train=64, test=4)
    results = []
    for sparsity in (0.0, 0.5):
        torch.manual_seed(0)
        net = _net([1.0, -3.0, 0.5], bn=True)
        x = data.train_x[:1, :, :3, :3]
        graph = ChannelGraph(net, x)
        small = SimpleNamespace(data=SimpleNamespace(train_x=data.train_x[:, :, :3, :3], train_y=data.train_y % 2,
                                                     augment=False), batch_size=64, device=torch.device("cpu"))
        criterion = make_criterion("slimming")
        criterion.sparsity, criterion.epochs, criterion.lr = sparsity, 1.0, 0.1  # one SGD step
        criterion.prepare(net, graph, small)
        group = next(g for g in graph.groups if g.root is net.conv1)
        results.append((net.bn1.weight.detach().clone(), criterion(group.tp_group)))
    (plain, _), (sparse, scores) = results
    # one step of SGD (first momentum step = the gradient): gamma_1 = gamma_1(plain) - lr * lambda * sign(1)
    assert torch.allclose(sparse, plain - 0.1 * 0.5, atol=1e-6)
    assert scores.tolist() == pytest.approx(sparse.abs().tolist())


def test_foad_greedy_removal_by_hand():
    a, b, c = (torch.tensor(v).view(2, 2) for v in ([1.0, 0, 0, 0], [0, 0, 0, 5.0], [1.0, 0.1, 0, 0]))
    x = torch.stack([a, b, c]).unsqueeze(0)
    # D01 = sqrt(26), D02 = 0.1, D12 = sqrt(26.01): 0 and 2 are nearest; 0 has the smaller total, goes first;
    # then 1 and 2 tie and the lower index goes
    assert _scores("foad", _net(torch.eye(3).tolist(), cin=3), x).tolist() == [0.0, 1.0, 2.0]


def test_fpum_copy_has_no_uniqueness():
    a, b = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    x = torch.stack([a, b]).unsqueeze(0)
    # channel 2 copies channel 0; channel 1 is orthogonal to both (and the orthonormal DCT keeps angles)
    scores = _scores("fpum", _net([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], cin=2), x)
    assert scores.tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-9)


def test_data_dependent_baseline_inside_torch_pruning_pruner():
    x = torch.tensor([-1.0, 2.0, -3.0, 4.0, 5.0, -6.0, 7.0, -8.0, 9.0]).view(1, 1, 3, 3)
    net = _net([1.0, -3.0, 0.25])
    with torch.no_grad():
        net.conv1.weight[2] = -0.25  # channel 2 is zero on 5 of 9 positions, like channel 1
        net.conv1.weight[1] = 3.0
    criterion = make_criterion("apoz")
    criterion.prepare(net, ChannelGraph(net, x), SimpleNamespace(batches=lambda: iter([(x, None)])))
    pruner = tp.pruner.BasePruner(net, x, importance=criterion, pruning_ratio=1 / 3,
                                  ignored_layers=[net.head, net.conv2])
    pruner.step()
    assert net.conv1.weight.flatten().tolist() == [1.0, 3.0]  # the mostly-zero channel went


def test_every_criterion_runs_through_the_engine():
    import warnings

    from bayesprune.config import PruneConfig
    from bayesprune.criteria import CRITERIA
    from bayesprune.rounds import run_pruning

    for name in CRITERIA:
        config = PruneConfig(model="smallcnn", data="digits", criterion=name, rounds=2, epochs=0.1,
                             train_subset=128, test_subset=32, calibration_batches=1, batch_size=64,
                             svi_steps=3, posterior_draws=10, device="cpu", progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights: the warning is expected
            summary = run_pruning(config)
        assert summary["final_ratio"]["macs"] <= 0.5, name
        assert all(r["statistics_seconds"] >= 0 for r in summary["rounds"]), name
