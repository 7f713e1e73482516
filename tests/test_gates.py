"""bayesprune.gates: one multiplicative gate per channel, applied after BatchNorm by forward hooks."""
import torch
from torch import nn

from bayesprune.gates import ChannelGates
from bayesprune.groups import ChannelGraph
from helpers import Residual, TwoLayers


def _randomised(net: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_a_gate_scales_its_channel_after_batchnorm_and_ones_change_nothing():
    net, x = _randomised(TwoLayers()), torch.randn(3, 1, 6, 6)
    graph = ChannelGraph(net, x[:1])
    gates = ChannelGates(graph)
    assert gates.num_channels == 16 and gates.layer_of_channel.tolist() == [0] * 8 + [1] * 8
    plain = net(x)
    gate_of = {module: index for module, index in gates.targets}  # each BatchNorm's gate per channel
    values = torch.ones(16)
    values[gate_of[net.b1][2]], values[gate_of[net.b2][5]] = 0.0, 0.5  # b1's channel 2 off, b2's 5 halved
    with gates:
        gates.values = torch.ones(16)
        torch.testing.assert_close(net(x), plain)
        gates.values = values
        gated = net(x)
        gates.values = None  # no gating
        torch.testing.assert_close(net(x), plain)
    # by hand: the same as scaling those BatchNorms' affine outputs
    with torch.no_grad():
        net.b1.weight[2] = net.b1.bias[2] = 0.0
        net.b2.weight[5] *= 0.5
        net.b2.bias[5] *= 0.5
    torch.testing.assert_close(gated, net(x))
    gates.values = torch.zeros(16)
    torch.testing.assert_close(net(x), gated)  # the hooks are gone after the block


def test_per_example_gates_and_the_removal_they_describe():
    net, x = _randomised(TwoLayers()), torch.randn(2, 1, 6, 6)
    gates = ChannelGates(ChannelGraph(net, x[:1]))
    per_example = torch.ones(2, 16)
    per_example[1, 0] = 0.0  # only example 1 loses channel 0
    with gates:
        gates.values = per_example
        both = net(x)
        gates.values = per_example[1]
        second = net(x[1:])
    torch.testing.assert_close(both[1:], second)
    torch.testing.assert_close(both[:1], net(x[:1]))
    kept = torch.ones(16, dtype=torch.bool)
    kept[[0, 3, 9]] = False  # channels 0 and 3 of the first group, 1 of the second
    names = [g.name for g in gates.graph.groups]
    assert gates.removal(kept) == {names[0]: [0, 3], names[1]: [1]}
    assert gates.group_slice(1) == slice(8, 16)


def test_coupled_channels_share_one_gate_on_every_batchnorm_of_their_group():
    net, x = _randomised(Residual()), torch.randn(2, 1, 6, 6)
    graph = ChannelGraph(net, x[:1])
    gates = ChannelGates(graph)
    assert len(graph.groups) == 1 and gates.num_channels == 4  # b1 and b2 are coupled by the addition
    assert {type(m) for m, _ in gates.targets} == {nn.BatchNorm2d} and len(gates.targets) == 2
    values = torch.tensor([1.0, 0.0, 1.0, 1.0])
    with gates:
        gates.values = values
        gated = net(x)
    with torch.no_grad():  # gate 1 off on both BatchNorms of the group
        for bn in (net.b1, net.b2):
            bn.weight[1] = bn.bias[1] = 0.0
    torch.testing.assert_close(gated, net(x))
