"""Each criterion against a case computed by hand."""
import pytest
import torch
import torch_pruning as tp
from torch import nn

from bayesprune.criteria import CRITERIA, make_criterion
from bayesprune.errors import BayesPruneError, ModelError
from bayesprune.groups import ChannelGraph


class TwoConv(nn.Module):
    def __init__(self, bn=True):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(3) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(3, 2, 1, bias=False)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.conv2(torch.relu(self.bn1(self.conv1(x)))).mean((2, 3)))


class Residual(nn.Module):
    """conv_a and conv_b both write the channels of the residual sum: one coupled group."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(1, 2, 1, bias=False)
        self.conv_b = nn.Conv2d(2, 2, 1, bias=False)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        a = self.conv_a(x)
        return self.head((a + self.conv_b(a)).mean((2, 3)))


def _group(model, root):
    graph = ChannelGraph(model, torch.randn(1, 1, 3, 3))
    return next(g for g in graph.groups if g.root is root), graph


def _two_conv():
    model = TwoConv()
    with torch.no_grad():
        model.conv1.weight.copy_(torch.tensor([1.0, -3.0, 0.5]).view(3, 1, 1, 1))
        model.conv2.weight.copy_(torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]]).view(2, 3, 1, 1))
        model.bn1.weight.copy_(torch.tensor([0.2, -0.9, 0.4]))
    return model


def test_l1_is_the_filter_abs_sum():
    model = _two_conv()
    group, _ = _group(model, model.conv2)
    assert make_criterion("l1")(group.tp_group).tolist() == [3.0, 1.5]  # |2|+|0|+|-1|, 3*0.5


def test_l2_is_the_filter_norm():
    model = _two_conv()
    group, _ = _group(model, model.conv2)
    assert make_criterion("l2")(group.tp_group).tolist() == pytest.approx([5 ** 0.5, 0.75 ** 0.5])


def test_l1_sums_coupled_filters():
    model = Residual()
    with torch.no_grad():
        model.conv_a.weight.copy_(torch.tensor([1.0, -2.0]).view(2, 1, 1, 1))
        model.conv_b.weight.copy_(torch.tensor([[3.0, 0.0], [1.0, -1.0]]).view(2, 2, 1, 1))
    group, graph = _group(model, model.conv_a)
    assert len(graph.groups) == 1 and {m for m, _, _ in group.layers()} >= {model.conv_a, model.conv_b}
    # channel 0: |1| + |3|+|0| = 4; channel 1: |-2| + |1|+|-1| = 4... make them differ:
    with torch.no_grad():
        model.conv_b.weight[1, 1] = -4.0
    assert make_criterion("l1")(group.tp_group).tolist() == [4.0, 7.0]


def test_bn_scale_is_abs_gamma_and_needs_batchnorm():
    model = _two_conv()
    group, _ = _group(model, model.conv1)
    assert make_criterion("bn-scale")(group.tp_group).tolist() == pytest.approx([0.2, 0.9, 0.4])
    plain = TwoConv(bn=False)
    group, _ = _group(plain, plain.conv1)
    with pytest.raises(ModelError, match="needs a BatchNorm"):
        make_criterion("bn-scale")(group.tp_group)


def test_random_is_seeded_and_uniform():
    model = _two_conv()
    group, _ = _group(model, model.conv1)
    a = make_criterion("random", seed=5)(group.tp_group)
    b = make_criterion("random", seed=5)(group.tp_group)
    c = make_criterion("random", seed=6)(group.tp_group)
    assert torch.equal(a, b) and not torch.equal(a, c) and ((a >= 0) & (a < 1)).all()


def test_criteria_plug_into_torch_pruning_pruners():
    model = _two_conv()
    pruner = tp.pruner.BasePruner(model, torch.randn(1, 1, 3, 3), importance=make_criterion("l1"),
                                  pruning_ratio=1 / 3, ignored_layers=[model.head, model.conv2])
    pruner.step()
    # conv1's filters have L1 norms 1, 3, 0.5: the 0.5 one goes
    assert model.conv1.weight.flatten().tolist() == [1.0, -3.0]


def test_registry_and_unknown_name():
    assert {"l1", "l2", "random", "bn-scale"} <= set(CRITERIA)
    assert all(cls.source and cls.description for cls in CRITERIA.values())
    with pytest.raises(BayesPruneError, match="unknown --criterion 'nope'"):
        make_criterion("nope")
