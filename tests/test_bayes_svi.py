"""The Bayesian core against cases whose answer is known."""
import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from bayesprune.bayes import SVIConfig, draw_from_guide, fit_svi, make_prior
from bayesprune.bayes.decision import bayes_decision, keep_probabilities
from bayesprune.decision.selector import BudgetedSelector
from bayesprune.gates import ChannelGates
from bayesprune.bayes.linear import SparseRegression
from bayesprune.bayes.network import GatedNetworkModel
from bayesprune.decision import CostModel
from bayesprune.groups import ChannelGraph
from bayesprune.nets import Architecture, build_model
from bayesprune.decision import RoundBudget


@pytest.mark.parametrize("prior", ["horseshoe", "regularized-horseshoe", "normal-jeffreys"])
def test_sparse_regression_recovers_nonzeros_and_shrinks_zeros(prior):
    torch.manual_seed(0)
    n, p = 200, 20
    x = torch.randn(n, p)
    beta = torch.zeros(p)
    beta[:3] = torch.tensor([3.0, -2.0, 1.5])
    y = x @ beta + 0.5 * torch.randn(n)
    pyro.clear_param_store()
    model = SparseRegression(make_prior(prior), p, noise=0.5)
    fit_svi(model.model, model.guide, SVIConfig(steps=1000, lr=0.03, warmup_fraction=0.0), x, y)
    mean = draw_from_guide(model.guide, 200, x, y)["beta"].mean(0)
    assert torch.allclose(mean[:3], beta[:3], atol=0.2)
    assert mean[3:].abs().max() < 0.15  # least squares leaves about 0.04 * 3 sd of noise here


def test_horseshoe_shares_one_global_scale():
    prior = make_prior("horseshoe", per_layer=True)
    layers = torch.tensor([0, 0, 1, 1, 1])
    trace = poutine.trace(lambda: prior.model_scales(layers, 2)).get_trace()
    assert trace.nodes["tau"]["value"].shape == ()  # one tau for all layers
    assert trace.nodes["phi"]["value"].shape == (2,) and trace.nodes["lambda"]["value"].shape == (5,)
    sigma = trace.nodes["_RETURN"]["value"]
    expected = trace.nodes["tau"]["value"] * trace.nodes["phi"]["value"][layers] * trace.nodes["lambda"]["value"]
    assert torch.allclose(sigma, expected)


def test_regularized_horseshoe_caps_large_scales():
    prior = make_prior("regularized-horseshoe", slab_scale=2.0)
    data = {"tau": torch.tensor(1.0), "c2": torch.tensor(4.0), "lambda": torch.tensor([0.01, 1.0, 1e4])}
    sigma = poutine.condition(lambda: prior.model_scales(torch.zeros(3, dtype=torch.long), 1), data)()
    # sigma^2 = c2 l^2 / (c2 + l^2): ~l for small l, -> sqrt(c2) = slab for huge l
    assert sigma.tolist() == pytest.approx([0.01, (4 / 5) ** 0.5, 2.0], rel=1e-3)


def _tiny_gated(batch_size):
    torch.manual_seed(0)
    from bayesprune.data import load_dataset

    data = load_dataset("digits").subset(train=64, test=8)
    net = build_model(Architecture("smallcnn", 1, 10, 8)).eval()
    graph = ChannelGraph(net, data.test_x[:1])
    gates = ChannelGates(graph)
    return GatedNetworkModel(net, gates, make_prior("horseshoe"), data, torch.device("cpu"), batch_size), data


def test_minibatch_likelihood_is_unbiased_for_the_full_data():
    gated, data = _tiny_gated(batch_size=64)
    s = torch.rand(gated.gates.num_channels) + 0.5
    with gated.gates:
        def loglik(batch_size):
            gated.batch_size = batch_size
            conditioned = poutine.condition(gated.model, {"s": s, "tau": torch.tensor(0.1),
                                                          "lambda": torch.ones(gated.gates.num_channels)})
            trace = poutine.trace(conditioned).get_trace()
            trace.compute_log_prob()
            assert trace.nodes["obs"]["scale"] == 64 / batch_size  # the plate's N/B factor
            return trace.nodes["obs"]["log_prob_sum"].item()  # already multiplied by it

        with torch.no_grad():
            full = loglik(64)
            estimates = np.array([loglik(8) for _ in range(600)])
    standard_error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - full) < 4 * standard_error
    assert estimates.std() > 0  # the subsample really varies


def test_gates_of_one_leave_the_network_unchanged():
    gated, data = _tiny_gated(batch_size=8)
    x = data.train_x[:4]
    with torch.no_grad():
        before = gated.net(x)
        with gated.gates:
            gated.gates.values = torch.ones(gated.gates.num_channels)
            same = gated.net(x)
            gated.gates.values = torch.zeros(gated.gates.num_channels)
            zeroed = gated.net(x)
    assert torch.allclose(before, same, atol=1e-6)
    # all gates 0 => every group silenced => logits equal the classifier bias
    assert torch.allclose(zeroed, gated.net.classifier.bias.expand(4, -1), atol=1e-6)


def _selector(fraction):
    from helpers import Chain  # the hand-computable cost model

    torch.manual_seed(0)
    model = Chain()
    graph = ChannelGraph(model, torch.randn(1, 1, 5, 5))
    cost = CostModel.build(graph)
    groups = np.concatenate([np.full(g.size, i) for i, g in enumerate(graph.groups)])
    return BudgetedSelector(cost, groups, fraction * cost.full(), "macs", 0.9), cost, groups


def test_budgeted_decision_meets_budget_and_is_monotone():
    rng = np.random.default_rng(0)
    draws = np.abs(rng.normal(1.0, 0.5, size=(300, 10)))
    previous = None
    for fraction in (0.3, 0.5, 0.7, 0.9):
        selector, cost, groups = _selector(fraction)
        kept, probability, _ = keep_probabilities(draws, selector)
        decision = bayes_decision(probability, draws.mean(0), selector)
        keep = cost.sizes - np.bincount(groups[~decision], minlength=2)
        assert cost.cost(keep) <= selector.target  # meets the budget
        # ... tightly: adding back the cheapest removed channel would break it
        removed_costs = selector.channel_cost[~decision]
        assert selector.target - cost.cost(keep) < removed_costs.max() + 1e-9
        for draw in kept:
            draw_keep = cost.sizes - np.bincount(groups[~draw], minlength=2)
            assert cost.cost(draw_keep) <= selector.target
        if previous is not None:
            assert (probability >= previous - 1e-12).all()  # monotone in the budget
        previous = probability


def test_keep_probability_by_hand():
    # two draws over the Chain's 10 channels; channel effects differ only in channel 0 of c1
    selector, cost, groups = _selector(0.95)
    low = np.ones((2, 10))
    low[0, 0] = 0.01  # in draw 0 channel 0 is useless, in draw 1 it is like the others
    kept, probability, _ = keep_probabilities(low, selector)
    assert not kept[0, 0] and probability[0] <= 0.5


def test_planted_dead_and_duplicate_channels(mnist5k):
    """Dead channels (zero filter and BN) get keep probability < 0.1, the channels whose ablation
    hurts the training loss most get > 0.9, and a duplicated pair keeps its summed gate."""
    from bayesprune.criteria.base import Calibration
    from bayesprune.criteria.bayes import BayesGSM
    from bayesprune.pretrained import resolve_model

    net = resolve_model("smallcnn-mnist5k", mnist5k).model.eval()
    conv, bn = net.features[3], net.features[4]
    dead, (original, copy) = [0, 1, 2, 3], (5, 6)
    with torch.no_grad():
        conv.weight[dead] = 0.0
        bn.weight[dead] = 0.0
        bn.bias[dead] = 0.0
        conv.weight[copy] = conv.weight[original]
        for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            tensor[copy] = tensor[original]
    graph = ChannelGraph(net, mnist5k.test_x[:1])
    criterion = BayesGSM(svi=SVIConfig(steps=300, lr=0.02, seed=0), draws=200)
    criterion.prepare(net, graph, Calibration(mnist5k, torch.device("cpu"), 128))
    cost = CostModel.build(graph)
    criterion.select(graph, cost, RoundBudget(0.85 * cost.full(), 0.85 * cost.full(), "macs", "global", 0.9))
    posterior = criterion.posterior
    in_layer = np.array(posterior.layer) == "features.3"
    keep = posterior.keep_probability[in_layer]
    gate_mean = posterior.gate_draws[:, in_layer].mean(0)
    assert (keep[dead] < 0.1).all()

    # informative = largest training-loss increase when the channel's gate is zeroed, measured directly
    gates = ChannelGates(graph)
    layer_index = [g.name for g in graph.groups].index("features.3")
    offset = gates.group_slice(layer_index).start
    x, y = mnist5k.train_x[:1024], mnist5k.train_y[:1024]
    loss = torch.nn.functional.cross_entropy
    with torch.no_grad(), gates:
        base = loss(net(x), y).item()
        increase = []
        for c in range(graph.groups[layer_index].size):
            values = torch.ones(gates.num_channels)
            values[offset + c] = 0.0
            gates.values = values
            increase.append(loss(net(x), y).item() - base)
    informative = np.argsort(increase)[-5:]
    assert (keep[informative] > 0.9).all()
    live = np.setdiff1d(np.arange(len(keep)), dead + [original, copy])
    pair = gate_mean[original] + gate_mean[copy]
    assert pair == pytest.approx(2 * np.median(gate_mean[live]), rel=0.35)
    assert max(keep[original], keep[copy]) > 0.9


def test_nuts_recovers_sparse_regression():
    from bayesprune.bayes.inference import sample_nuts

    torch.manual_seed(1)
    n, p = 100, 6
    x = torch.randn(n, p)
    beta = torch.tensor([2.0, -1.5, 0.0, 0.0, 0.0, 0.0])
    y = x @ beta + 0.5 * torch.randn(n)
    model = SparseRegression(make_prior("horseshoe", tau0=0.5), p, noise=0.5)
    draws = sample_nuts(model.model, num_samples=100, warmup_steps=100, seed=0, x=x, y=y)
    mean = draws["beta"].mean(0)
    assert torch.allclose(mean[:2], beta[:2], atol=0.25) and mean[2:].abs().max() < 0.2


def test_bayes_importance_inside_torch_pruning_pruner():
    import torch_pruning as tp

    from bayesprune.criteria.base import Calibration
    from bayesprune.criteria.bayes import BayesGSM
    from bayesprune.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("digits").subset(train=256, test=8)
    net = build_model(Architecture("smallcnn", 1, 10, 8)).eval()
    x = data.test_x[:1]
    criterion = BayesGSM(svi=SVIConfig(steps=20, seed=0), draws=50)
    criterion.prepare(net, ChannelGraph(net, x), Calibration(data, torch.device("cpu"), 64))
    first = net.features[0]
    scores = criterion(ChannelGraph(net, x).by_name()["features.0"].tp_group)
    expected_kept = sorted(torch.argsort(scores, descending=True)[:24].tolist())
    weights_before = first.weight.detach().clone()
    pruner = tp.pruner.BasePruner(net, x, importance=criterion, pruning_ratio=0.25, ignored_layers=[net.classifier])
    pruner.step()
    assert first.out_channels == 24
    assert torch.equal(first.weight, weights_before[expected_kept])  # the lowest-effect channels went


def test_map_weights_move_only_when_asked():
    from bayesprune.criteria.base import Calibration
    from bayesprune.criteria.bayes import BayesGSM
    from bayesprune.data import load_dataset

    data = load_dataset("digits").subset(train=128, test=8)
    for train_weights in (False, True):
        torch.manual_seed(0)
        net = build_model(Architecture("smallcnn", 1, 10, 8)).eval()
        before = net.features[0].weight.detach().clone()
        criterion = BayesGSM(svi=SVIConfig(steps=5, seed=0), draws=5, train_weights=train_weights)
        criterion.prepare(net, ChannelGraph(net, data.test_x[:1]), Calibration(data, torch.device("cpu"), 32))
        assert torch.equal(net.features[0].weight, before) != train_weights


def test_uniform_bayes_decision_removes_the_same_share_per_layer_and_is_monotone():
    from helpers import Chain

    torch.manual_seed(0)
    graph = ChannelGraph(Chain(), torch.randn(1, 1, 5, 5))
    cost = CostModel.build(graph)
    groups = np.concatenate([np.full(g.size, i) for i, g in enumerate(graph.groups)])
    draws = np.abs(np.random.default_rng(1).normal(1.0, 0.5, size=(200, 10)))
    previous = None
    for fraction in (0.4, 0.6, 0.8):
        selector = BudgetedSelector(cost, groups, fraction * cost.full(), "macs", 0.9, "uniform")
        kept, probability, _ = keep_probabilities(draws, selector)
        removed_per_group = np.stack([np.bincount(groups[~k], minlength=2) for k in kept])
        assert (removed_per_group == selector.per_group_counts).all()  # the same counts in every draw
        decision = bayes_decision(probability, draws.mean(0), selector)
        assert cost.cost(cost.sizes - np.bincount(groups[~decision], minlength=2)) <= selector.target
        # within a group, the channels removed are those with the lowest keep probability
        for g in range(2):
            in_g = groups == g
            if (~decision[in_g]).any() and decision[in_g].any():
                assert probability[in_g][~decision[in_g]].max() <= probability[in_g][decision[in_g]].min() + 1e-12
        if previous is not None:
            assert (probability >= previous - 1e-12).all()
        previous = probability
