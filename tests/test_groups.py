"""Surgery on torch-pruning's DepGraph: identity when nothing is cut, consistent counts, reload."""
import numpy as np
import pytest
import torch
from torch import nn

from bayesprune.checkpoint import load_checkpoint, save_checkpoint
from bayesprune.criteria import make_criterion
from bayesprune.decision import CostModel, allocate
from bayesprune.errors import ModelError
from bayesprune.groups import ChannelGraph, count_macs_params, example_input
from bayesprune.nets import Architecture, build_model

ARCHS = ["resnet56", "vgg16", "mobilenetv2"]


def _model(name, size=32):
    torch.manual_seed(0)
    arch = Architecture(name, 3, 10, size)
    model = build_model(arch).eval()
    for m in model.modules():  # non-trivial BN statistics so that a wrong cut would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return arch, model


@pytest.mark.parametrize("name", ARCHS)
def test_surgery_with_nothing_pruned_is_identity(name):
    arch, model = _model(name)
    x = example_input(arch, 4)
    before = model(x)
    graph = ChannelGraph(model, x)
    assert graph.prune({g.name: [] for g in graph.groups}) == []
    assert torch.allclose(model(x), before, atol=1e-6)


@pytest.mark.parametrize("name", ARCHS)
def test_cut_shrinks_macs_as_predicted_and_reloads(name, tmp_path):
    arch, model = _model(name)
    x = example_input(arch, 2)
    base_macs, base_params = count_macs_params(model, x[:1])
    graph = ChannelGraph(model, x)
    cost = CostModel.build(graph)
    assert cost.full("macs") == pytest.approx(base_macs, rel=1e-9)
    assert cost.full("params") == pytest.approx(base_params, rel=1e-9)
    removal = allocate(make_criterion("l1").score(graph), cost, 0.6 * base_macs, "macs", "uniform")
    keep = cost.sizes - np.array([len(removal[n]) for n in cost.names])
    history = graph.prune(removal)
    macs, params = count_macs_params(model, x[:1])
    assert macs <= 0.6 * base_macs
    # conv/linear/BN terms are exact; activations/pools (< 2% of MACs) only shrink: an upper bound
    assert 0.98 * cost.cost(keep, "macs") <= macs <= cost.cost(keep, "macs")
    assert params == cost.cost(keep, "params")
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    save_checkpoint(tmp_path / "m.pt", model, arch, history)
    reloaded, _, _ = load_checkpoint(tmp_path / "m.pt")
    assert count_macs_params(reloaded, x[:1]) == (macs, params)
    assert torch.allclose(reloaded.eval()(x), out, atol=1e-5)


def test_residual_channels_are_cut_together():
    arch, model = _model("resnet20")
    x = example_input(arch, 2)
    graph = ChannelGraph(model, x)
    stage3 = next(g for g in graph.groups if g.size == 64 and "shortcut" in g.name)
    coupled = [m for m, _, _ in stage3.layers(out_channels=True) if isinstance(m, nn.Conv2d)]
    assert len(coupled) == 4  # the shortcut conv and the last conv of the stage's three blocks
    graph.prune({stage3.name: [0, 5, 7]})
    assert model.fc.in_features == 61 and all(m.out_channels == 61 for m in coupled)


def test_depthwise_conv_follows_its_expansion():
    arch, model = _model("mobilenetv2")
    x = example_input(arch, 2)
    graph = ChannelGraph(model, x)
    block = model.features[2].block  # expand 1x1 -> depthwise 3x3 -> project 1x1
    group = next(g for g in graph.groups if g.root is block[0][0] or g.root is block[1][0])
    graph.prune({group.name: [1, 2]})
    assert block[0][0].out_channels == block[1][0].in_channels == block[1][0].out_channels == block[1][0].groups
    assert model(x).shape == (2, 10)


def test_classifier_is_never_a_group_and_linear_only_models_are_refused():
    arch, model = _model("vgg16")
    graph = ChannelGraph(model, example_input(arch))
    assert all(g.root is not model.classifier for g in graph.groups)
    with pytest.raises(ModelError, match="no prunable channel group"):
        ChannelGraph(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), torch.randn(1, 3, 2, 2))
