"""Surgery around a cut: folding, bias and least-squares compensation, Net2Wider (bayesprune.surgery)."""
import copy

import pytest
import torch
from torch import nn

from bayesprune.checkpoint import load_checkpoint, save_checkpoint
from bayesprune.gates import ChannelGates
from bayesprune.groups import ChannelGraph, count_macs_params
from bayesprune.nets import Architecture, build_model
from bayesprune.nets.small_cnn import SmallCNN
from bayesprune.surgery import compensate, fold_gates, widen
from bayesprune.surgery.compensate import input_patches, patch_count, patches_at


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


class _ConvNext3x3(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.relu, self.c2 = nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        return self.c2(self.relu(self.c1(x))).flatten(1)


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


def test_least_squares_from_the_gram_matrix_is_the_ridge_fit_on_the_rows():
    """lsq keeps only [X 1]^T [X 1]; its refit must be the ridge regression of the unpruned output
    on the kept inputs and an intercept, solved here directly on the rows (every row sampled)."""
    torch.manual_seed(4)
    net = _LinearNext()
    x = torch.randn(64, 5)
    with torch.no_grad():
        inputs = net.relu(net.hidden(x)).double()  # what `out` reads
        target = inputs @ net.out.weight.double().T  # its output without bias, unpruned
    kept = [0, 1, 3]
    design = torch.cat([inputs[:, kept], torch.ones(64, 1, dtype=torch.float64)], 1)
    gram = design.T @ design
    gram += 1e-3 * gram.diagonal().mean() * torch.eye(4, dtype=torch.float64)
    solution = torch.linalg.solve(gram, design.T @ target)
    bias = net.out.bias.detach().double().clone()
    compensate(ChannelGraph(net, x[:1]), {"hidden": [2]}, [(x, None)], "lsq", max_rows=8 * 64, ridge=1e-3)
    torch.testing.assert_close(net.out.weight.double()[:, kept], solution[:-1].T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.out.bias.double(), bias + solution[-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module", [nn.Conv2d(3, 4, 3, padding=1),
                                    nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)),
                                    nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.Conv2d(3, 4, 1, stride=2),
                                    nn.Linear(5, 2)])
def test_sampled_patches_are_the_unfolded_rows(module):
    """lsq samples positions and gathers only their patches; they must be unfold's rows exactly
    (strides, rectangular kernels, dilation, padding)."""
    x = torch.randn(2, 3, 7, 6) if isinstance(module, nn.Conv2d) else torch.randn(4, 3, 5)
    everything = input_patches(module, x)
    assert patch_count(module, x) == len(everything)
    rows = torch.randperm(len(everything), generator=torch.Generator().manual_seed(0))[:9]
    assert torch.equal(patches_at(module, x, rows), everything[rows])


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


def test_compensated_share_is_what_the_least_squares_refit_leaves_of_a_cut():
    """c3 (1x1, 6 -> 2) reads orthonormal, zero-mean columns: x0 = x1 = q0 (a duplicate pair),
    x2 = 0.6 q1 + 0.8 q2, x3 = q1, x4 = q3, x5 = q4. Removing x0 alone leaves nothing (x1 rebuilds
    it), x2 alone leaves 0.8^2 = 0.64 of its error (0.6 q1 is rebuilt from x3), x4 alone all of it;
    up to the refit's ridge (1e-3 of the Gram matrix's mean diagonal)."""
    import numpy as np

    from bayesprune.surgery.compensate import InputStatistics
    from bayesprune.surgery.residual import compensated_share
    from helpers import Chain

    net = Chain()
    graph = ChannelGraph(net, torch.randn(1, 1, 4, 4))
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((64, 5))
    q = np.linalg.qr(raw - raw.mean(0))[0]  # orthonormal columns, each orthogonal to the ones
    x = np.stack([q[:, 0], q[:, 0], 0.6 * q[:, 1] + 0.8 * q[:, 2], q[:, 1], q[:, 3], q[:, 4]], 1)
    design = np.concatenate([x, np.ones((64, 1))], 1)
    statistics = {net.c3: InputStatistics(patch_gram=torch.tensor(design.T @ design))}
    name = [g.name for g in graph.groups if g.size == 6][0]
    first = {order[0]: compensated_share(graph, {name: np.array(order)}, statistics)[name][1]
             for order in ([0, 1, 2, 3, 4, 5], [2, 0, 1, 3, 4, 5], [4, 0, 1, 2, 3, 5])}
    assert first[0] == pytest.approx(0.0, abs=0.02) and first[2] == pytest.approx(0.64, abs=0.02)
    assert first[4] == pytest.approx(1.0, abs=0.02)
    shares = compensated_share(graph, {name: np.arange(6)}, statistics)[name]
    assert shares[0] == 1.0 and len(shares) == 7 and (shares >= 0).all() and (shares <= 1).all()
    # obs's greedy pass (its recorded prefix errors over the zeroed cut's) gives the same shares for
    # its own order (6 channels: compensated_share's 16 points cover every prefix, so both are exact)
    from bayesprune.criteria.obs import greedy_refit_order
    from bayesprune.surgery.residual import RIDGE, refit_problem, shares_of_prefixes, zeroed_matrix

    weight, precision, gram, _ = refit_problem(net.c3, statistics[net.c3], RIDGE)
    blocks = np.arange(6)[:, None]
    position, refit = greedy_refit_order(6, [(np.arange(6), blocks, np.concatenate([weight, np.zeros((2, 1))], 1),
                                              precision)])
    order = np.argsort(position)
    assert order[0] in (0, 1)  # a twin goes first
    from_obs = shares_of_prefixes(refit, zeroed_matrix(weight, gram, blocks), order)
    assert from_obs.tolist() == pytest.approx(compensated_share(graph, {name: order}, statistics)[name].tolist(),
                                              abs=1e-9)
    assert from_obs[1] == pytest.approx(0.0, abs=0.02)
    # the zeroed matrix by hand: C[i, j] = (W^T W)_ij G_ij for 1x1 kernels
    assert zeroed_matrix(weight, gram, blocks) == pytest.approx((weight.T @ weight) * gram[:6, :6])
