"""bayesprune.fisher: per-example gate gradients, their empirical Fisher, and the cut priority."""
import numpy as np
import torch
from torch import nn

from bayesprune.fisher import GateFisher, cut_priority, gate_fisher, order_ranks, per_example_gate_gradients
from bayesprune.gates import ChannelGates
from bayesprune.groups import ChannelGraph


class TinyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x.flatten(1))))


def test_per_example_gate_gradients_match_the_hand_derivative():
    torch.manual_seed(0)
    net = TinyMLP().eval()
    x, y = torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1])
    gates = ChannelGates(ChannelGraph(net, x[:1]))
    got = per_example_gate_gradients(net, gates, x, y).numpy()
    # d log p(y|x) / d s_c at s = 1 = (onehot_y - softmax)^T W2[:, c] * relu(h_c), h = W1 x + b1
    with torch.no_grad():
        h = torch.relu(net.hidden(x)).numpy()
        p = torch.softmax(net(x), 1).numpy()
    onehot = np.eye(2)[y.numpy()]
    expected = ((onehot - p) @ net.out.weight.detach().numpy()) * h
    order = gates.targets[0][1].numpy()  # gate index of each hidden unit
    np.testing.assert_allclose(got[:, order], expected, rtol=1e-5, atol=1e-7)
    fisher = gate_fisher(net, gates, [(x[:3], y[:3]), (x[3:], y[3:])])  # two batches: rows in order
    np.testing.assert_allclose(fisher.fisher[order], (expected ** 2).mean(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(fisher.halves[0][order], (expected[0::2] ** 2).mean(0), rtol=1e-5, atol=1e-9)
    assert fisher.examples == 5 and net.training is False


def test_fisher_block_is_the_mean_outer_product_over_all_or_half_the_examples():
    g = np.array([[1.0, 2.0, 0.0], [3.0, -1.0, 1.0], [0.0, 1.0, 2.0]])
    fisher = GateFisher((g ** 2).mean(0), ((g[0::2] ** 2).mean(0), (g[1::2] ** 2).mean(0)), 3, g)
    # channels (2, 0): mean of g_i2 g_i0 = (0 + 3 + 0) / 3 = 1; g_i2^2: (0 + 1 + 4) / 3; g_i0^2: 10 / 3
    np.testing.assert_allclose(fisher.block(np.array([2, 0])), [[5 / 3, 1.0], [1.0, 10 / 3]])
    np.testing.assert_allclose(fisher.block(np.array([0, 1]), half=1), [[9.0, -3.0], [-3.0, 1.0]])  # row 1 only
    np.testing.assert_allclose(np.diag(fisher.block(np.arange(3))), fisher.fisher)


def test_cut_priority_adds_each_channels_share_of_the_layers_quadratic_loss():
    """Removing a layer's first k channels costs N s^T F s / 2 over them; the priorities are the
    increments per unit cost (made non-decreasing), so they sum to the whole cut's loss."""
    orders, examples = [np.array([1, 0])], 2  # the layer gives up channel 1 first
    block = np.array([[1.0, 0.5], [0.5, 4.0]])  # in that order: F_11 = 1, F_00 = 4, F_10 = 0.5
    cost = np.array([2.0, 1.0])
    s = np.array([[1.0, 1.0], [0.5, 1.0]])  # two draws of (s_0, s_1)
    priority = cut_priority(s, orders, [block], examples, cost)
    # draw 1: channel 1 first adds 0.5*2*1 = 1 (cost 1); channel 0 adds 0.5*2*(4 + 2*0.5) = 5 (cost 2)
    np.testing.assert_allclose(priority[0], [2.5, 1.0])
    # draw 2: s_0 = 0.5: adds 0.5*2*(0.25*4 + 2*0.5*0.5*1) = 1.5 (cost 2) -> 0.75, below channel 1's 1.0
    np.testing.assert_allclose(priority[1], [1.0, 1.0])  # made non-decreasing along the order
    np.testing.assert_allclose((priority[0] * cost).sum(), 0.5 * 2 * s[0] @ block[::-1, ::-1] @ s[0])
    diagonal = cut_priority(s, orders, [np.diag(np.diag(block))], examples, cost)  # no interactions
    np.testing.assert_allclose(diagonal[0], [2.0, 1.0])  # 0.5*2*4 / 2 and 0.5*2*1 / 1


def test_order_ranks_are_positions_in_each_layers_order():
    ranks = order_ranks([np.array([2, 0]), np.array([4, 1, 3])], 5)
    assert ranks.tolist() == [1, 1, 0, 2, 0]


def test_cross_layer_priority_by_hand_and_without_cross_terms_as_the_per_layer_one():
    from bayesprune.fisher import cross_layer_priority

    orders = [np.array([0, 1]), np.array([2])]  # layer A gives up 0 then 1; layer B has channel 2
    precision = np.array([[1.0, 0.0, 1.0], [0.0, 1.4, 0.0], [1.0, 0.0, 1.2]])  # 0 and 2 hurt the same examples
    ones, cost = np.ones((1, 3)), np.ones(3)
    # step 0: 0 adds 0.5, 2 adds 0.6 -> 0; step 1: 1 adds 0.7, 2 adds 0.6 + 1.0 (with 0 gone) -> 1; then 2
    assert cross_layer_priority(ones, orders, precision, cost)[0].tolist() == [0, 1, 2]
    per_layer = cut_priority(ones, orders, [precision[:2, :2], precision[2:, 2:]], 1, cost)[0]
    assert np.argsort(per_layer).tolist() == [0, 2, 1]  # layers apart: 2 (0.6) goes before 1 (0.7)
    rng = np.random.default_rng(0)
    s, cost = rng.uniform(0.5, 1.5, (4, 3)), np.array([1.0, 2.0, 3.0])
    diagonal = np.diag([1.0, 9.0, 2.0])  # no interactions, and each layer's increments rise along its order
    steps = cross_layer_priority(s, orders, diagonal, cost)
    for draw, step in zip(cut_priority(s, orders, [diagonal[:2, :2], diagonal[2:, 2:]], 1, cost), steps):
        assert np.argsort(draw).tolist() == np.argsort(step).tolist()


def test_cut_priority_scales_each_prefix_by_what_compensation_leaves():
    """One layer of 3 channels, diagonal Fisher (2, 4, 6), gates 1, N = 1, unit costs: the prefixes
    cost 1, 3, 6 nats zeroed; with shares (1,) 0, 0.5, 1 they cost 0, 1.5, 6, so the channels add
    0, 1.5, 4.5."""
    gates, order, block, cost = np.ones((1, 3)), [np.array([0, 1, 2])], [np.diag([2.0, 4.0, 6.0])], np.ones(3)
    np.testing.assert_allclose(cut_priority(gates, order, block, 1, cost), [[1.0, 2.0, 3.0]])
    shares = [np.array([1.0, 0.0, 0.5, 1.0])]
    np.testing.assert_allclose(cut_priority(gates, order, block, 1, cost, shares), [[0.0, 1.5, 4.5]])


def test_cut_pricing_takes_the_blocks_its_options_name_by_hand():
    from bayesprune.bayes.pricing import CutPricing

    g = np.array([[1.0, 2.0, 0.0], [3.0, -1.0, 1.0], [0.0, 1.0, 2.0], [1.0, 0.0, 1.0]])
    fisher = GateFisher((g ** 2).mean(0), ((g[0::2] ** 2).mean(0), (g[1::2] ** 2).mean(0)), 4, g)
    orders, s, cost = [np.array([1, 0]), np.array([2])], np.array([[1.0, 0.5, 2.0]]), np.array([1.0, 2.0, 1.0])
    full = CutPricing.of(fisher, orders, 10)
    np.testing.assert_allclose(full.blocks[0], fisher.block(np.array([1, 0])))  # in the layer's order
    np.testing.assert_allclose(full.priority(s, cost), cut_priority(s, orders, full.blocks, 10, cost))
    diagonal = CutPricing.of(fisher, orders, 10, half=1, interactions=False)
    # half 1 is rows 1 and 3; in the layer's order (1, 0): ((-1)^2 + 0) / 2 and (3^2 + 1^2) / 2, no cross term
    np.testing.assert_allclose(diagonal.blocks[0], np.diag([0.5, 5.0]))
    from bayesprune.fisher import cross_layer_priority

    network = CutPricing.of(fisher, orders, 10, cross_layer=True)
    np.testing.assert_allclose(network.network_precision, 10 * fisher.block(np.arange(3)))
    np.testing.assert_allclose(network.priority(s, cost), cross_layer_priority(s, orders, 10 * g.T @ g / 4, cost))
