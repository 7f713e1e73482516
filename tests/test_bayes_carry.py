"""bayes-svi across rounds: the carried posterior (bayesprune.bayes.carry) and predictions of the final cut."""
import math

import numpy as np
import torch
from pyro import poutine

from bayesprune.bayes import SVIConfig
from bayesprune.bayes.decision import keep_probabilities
from bayesprune.bayes.network import GatedNetworkModel
from bayesprune.criteria.base import Calibration
from bayesprune.criteria.bayes import BayesGSM
from bayesprune.decision import CostModel, RoundBudget
from bayesprune.decision.selector import BudgetedSelector
from bayesprune.gates import ChannelGates
from bayesprune.groups import ChannelGraph, count_macs_params
from bayesprune.nets.small_cnn import SmallCNN
from bayesprune.surgery import fold_gates

CPU = torch.device("cpu")


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
