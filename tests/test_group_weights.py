"""bayesprune.group_weights: a group's filters and BatchNorm scales, at their root channel positions."""
import torch

from bayesprune.group_weights import batchnorm_scales, concatenated_filters, filter_rows, group_size, scatter_sum
from bayesprune.groups import ChannelGraph
from helpers import Residual


def _group():
    torch.manual_seed(0)
    net = Residual().eval()
    with torch.no_grad():
        net.b1.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        net.b2.weight.copy_(torch.tensor([10.0, 20.0, 30.0, 40.0]))
    graph = ChannelGraph(net, torch.randn(1, 1, 6, 6))
    return net, graph.groups[0].tp_group


def test_a_coupled_groups_filters_and_scales_by_hand():
    net, group = _group()
    assert group_size(group) == 4
    # c2 and c1 both produce the group's channels (torch-pruning lists c2 first here)
    assert [(tuple(r.shape), idx) for r, idx in filter_rows(group)] == [((4, 36), [0, 1, 2, 3]),
                                                                          ((4, 9), [0, 1, 2, 3])]
    filters = concatenated_filters(group)
    # channel j: c2's filter j (4*3*3 = 36 weights) beside c1's filter j (1*3*3 = 9 weights)
    assert torch.equal(filters, torch.cat([net.c2.weight.flatten(1), net.c1.weight.flatten(1)], 1).double())
    total, layers = scatter_sum(4, batchnorm_scales(group))
    assert layers == 2 and total.tolist() == [11.0, 22.0, 33.0, 44.0]
    l2 = scatter_sum(4, ((r.pow(2).sum(1), idx) for r, idx in filter_rows(group)))[0]
    assert torch.allclose(l2, filters.pow(2).sum(1))  # the L2 criterion's sum over the group's producers
