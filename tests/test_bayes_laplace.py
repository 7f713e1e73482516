"""The closed-form Bayesian criterion (``bayes``) against cases whose answer is known."""
import math

import numpy as np
import pytest
import torch

from bayesprune.bayes.gsm_quadrature import GSMPosterior, ScaleGrid
from bayesprune.bayes.priors import make_prior
from bayesprune.criteria import BayesLaplace, make_criterion
from bayesprune.criteria.base import Calibration
from bayesprune.decision import CostModel
from bayesprune.groups import ChannelGraph
from bayesprune.decision import RoundBudget
from helpers import planted_network as _planted


# --- the quadrature posterior -------------------------------------------------------------
def _point_grid(tau: float, lam: float) -> ScaleGrid:
    return ScaleGrid(np.array([tau]), np.zeros(1), np.array([lam]), np.zeros(1))


def test_conjugate_posterior_with_fixed_scales_and_likelihood_scaled_per_example():
    """With tau and lambda fixed, z | zhat is the textbook Gaussian; the likelihood's precision is
    N F (examples times Fisher per example), so doubling N is doubling F."""
    prior = make_prior("horseshoe", tau0=1.0)
    zhat, n, fisher, prior_var = np.array([1.0, 0.5]), 100, np.array([0.02, 0.001]), 0.3 ** 2
    nu = zhat ** 2 / (n * fisher)
    post = GSMPosterior.fit(zhat, nu, prior, _point_grid(0.3, 1.0))
    draws = post.draw(40000, np.random.default_rng(0))["z"]
    mean, var = prior_var * zhat / (prior_var + nu), prior_var * nu / (prior_var + nu)
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * np.sqrt(var.max() / 40000))
    np.testing.assert_allclose(draws.var(0), var, rtol=0.03)
    doubled = GSMPosterior.fit(zhat, zhat ** 2 / (2 * n * fisher), prior, _point_grid(0.3, 1.0))
    twice_fisher = GSMPosterior.fit(zhat, zhat ** 2 / (n * 2 * fisher), prior, _point_grid(0.3, 1.0))
    np.testing.assert_allclose(doubled.noise_variance, twice_fisher.noise_variance)


def test_horseshoe_marginal_density_on_the_grid_obeys_carvalho_bounds():
    """Carvalho, Polson & Scott 2010, Theorem 1 (tau = 1): K/2 log(1 + 4/z^2) < p(z) < K log(1 + 2/z^2),
    K = 1 / sqrt(2 pi^3)."""
    grid = ScaleGrid.for_prior(make_prior("horseshoe", tau0=1.0))
    K = 1 / math.sqrt(2 * math.pi ** 3)
    for z in (0.05, 0.3, 1.0, 3.0, 10.0):
        normal = np.exp(-0.5 * z ** 2 / grid.lam ** 2) / np.sqrt(2 * np.pi * grid.lam ** 2)
        density = np.exp(grid.lam_log_weight) @ normal
        assert K / 2 * math.log1p(4 / z ** 2) < density < K * math.log1p(2 / z ** 2)


def test_centred_quadrature_and_non_centred_sampling_give_one_prior():
    """z ~ N(0, (tau lambda)^2) integrated on the grid (centred) against z = tau * lambda * eps with
    tau, lambda half-Cauchy draws (non-centred): the same distribution of |z|."""
    prior = make_prior("horseshoe", tau0=0.5)
    flat = GSMPosterior.fit(np.zeros(1), np.array([1e12]), prior)  # no information: posterior = prior
    centred = np.abs(flat.draw(60000, np.random.default_rng(1))["z"][:, 0])
    rng = np.random.default_rng(2)
    non_centred = np.abs(0.5 * np.abs(rng.standard_cauchy(60000)) * np.abs(rng.standard_cauchy(60000))
                         * rng.standard_normal(60000))
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        a, b = np.quantile(centred, q), np.quantile(non_centred, q)
        assert abs(math.log(a / b)) < 0.08, (q, a, b)


def test_global_scale_is_learned_from_all_channels():
    """Many channels with nothing in them pull the shared tau down; strong signals pull it up."""
    prior = make_prior("horseshoe", tau0=1.0)
    noise = np.full(200, 0.01)
    sparse = GSMPosterior.fit(np.r_[np.full(5, 3.0), np.zeros(195)], noise, prior)
    dense = GSMPosterior.fit(np.full(200, 3.0), noise, prior)
    assert sparse.tau_mean() < 0.3 < 1.0 < dense.tau_mean()
    draws = sparse.draw(400, np.random.default_rng(0))["z"]
    assert np.abs(draws[:, 5:]).mean() < 0.02 and np.abs(draws[:, :5].mean(0) - 3.0).max() < 0.05


# --- planted networks -------------------------------------------------------------------------
def _prepared(chains=2, seed=0, allocation="global", **options):
    net, data = _planted()
    graph = ChannelGraph(net, data.test_x[:1])
    cost_model = CostModel.build(graph)
    criterion = BayesLaplace(draws=200, chains=chains, seed=seed, **options)
    criterion.prepare(net, graph, Calibration(data, torch.device("cpu"), 128, 4))
    dead_layer = np.array([g.name == "c1" for g in graph.groups])
    target = cost_model.cost(cost_model.sizes - 4 * dead_layer, "macs")  # room for exactly the dead four
    removal = criterion.select(graph, cost_model, RoundBudget(target, target, "macs", allocation, 0.9))
    return criterion, graph, removal


def test_dead_channels_are_pruned_and_live_ones_kept_with_the_redundant_layer_cut_harder():
    criterion, graph, removal = _prepared()
    keep = criterion.posterior.keep_probability
    first = graph.index_of(graph.model.c1)
    dead = (criterion.group_of_channel == first) & (np.concatenate([np.arange(g.size) for g in graph.groups]) < 4)
    assert keep[dead].max() < 0.05 and keep[~dead].min() > 0.95
    assert sorted(removal["c1"]) == [0, 1, 2, 3] and removal["c2"] == []  # uniform would take 2 + 2
    assert criterion.fisher[dead].max() == 0.0 and criterion.fisher[~dead].min() > 0.0


def test_cross_layer_pricing_keeps_the_planted_answer_and_its_agreement():
    from bayesprune.errors import BayesPruneError

    criterion, graph, removal = _prepared(cross_layer=True)
    assert sorted(removal["c1"]) == [0, 1, 2, 3] and removal["c2"] == []
    assert criterion.agreement["cross_fit"]["kept_of_low"] < 0.05
    with pytest.raises(BayesPruneError, match="cross_layer"):
        BayesLaplace(cross_layer=True, interactions=False)


def test_two_sets_of_draws_agree():
    criterion, _, _ = _prepared(chains=2)
    agreement = criterion.agreement
    assert agreement["r_hat_max"] <= 1.05 and agreement["passes"]
    assert agreement["cross_fit"]["kept_of_low"] < 0.05 and agreement["cross_fit"]["kept_of_high"] > 0.95


def test_uniform_allocation_leaves_widths_to_the_budget():
    criterion, graph, removal = _prepared(allocation="uniform")
    assert len(removal["c1"]) == len(removal["c2"]) > 0  # the same fraction of each layer


def test_carried_posterior_becomes_the_next_prior_and_survives_json():
    import json

    criterion, _, removal = _prepared()
    criterion.after_cut(removal)
    state = json.loads(json.dumps(criterion.state_dict()))
    assert sum(len(rows) for rows in state["carried"]["local"].values()) == int(criterion.posterior.decision.sum())
    assert len(state["carried"]["local"]["c1"]) == 4  # the dead four went
    fresh = BayesLaplace()
    fresh.load_state_dict(state)
    assert fresh.carried == state["carried"] and fresh._round == 1
    criterion.forgetting = 0.0
    criterion.after_cut(removal)
    assert criterion.carried is None


# --- configuration ------------------------------------------------------------
def test_make_criterion_builds_prior_and_within_objects():
    from bayesprune.config import PruneConfig
    from bayesprune.errors import BayesPruneError

    config = PruneConfig(seed=3, prior="regularized-horseshoe", tau0=0.5, within="l1", posterior_draws=10, chains=1,
                         forgetting=0.0)
    criterion = make_criterion("bayes", config=config)
    assert criterion.prior.name == "regularized-horseshoe" and criterion.prior.tau0 == 0.5
    assert criterion.within.name == "l1" and criterion.seed == 3 and criterion.draws == 10
    assert make_criterion("bayes").prior.tau0 == 1.0 and make_criterion("bayes-svi").prior.tau0 == 0.1  # defaults
    assert make_criterion("bayes", config=PruneConfig(prior="normal-jeffreys")).prior.name == "normal-jeffreys"
    with pytest.raises(BayesPruneError, match="per-layer"):
        make_criterion("bayes", config=PruneConfig(per_layer_scale=True))
    for within in ("bayes", "bayes-svi", "sep"):
        with pytest.raises(BayesPruneError, match="cannot order channels"):
            make_criterion("bayes", config=PruneConfig(within=within))


def test_global_allocation_gives_any_criterion_expected_loss_widths():
    """l2 under --allocation global: the widths come from the gate Fisher per MAC, so the layer
    with dead channels loses them and the other layer keeps everything; score-global ranks
    norms over their layer's mean and cannot see that the dead channels cost nothing."""
    from bayesprune.criteria import L2Norm
    from bayesprune.decision import ExpectedLossWidths, allocate

    net, data = _planted()
    graph = ChannelGraph(net, data.test_x[:1])
    cost_model = CostModel.build(graph)
    widths = ExpectedLossWidths.measure(net, graph, Calibration(data, torch.device("cpu"), 128, 4))
    dead_layer = np.array([g.name == "c1" for g in graph.groups])
    target = cost_model.cost(cost_model.sizes - 4 * dead_layer, "macs")
    removal = allocate(L2Norm().score(graph), cost_model, target, "macs", widths)
    assert sorted(removal["c1"]) == [0, 1, 2, 3] and removal["c2"] == []
    from bayesprune.errors import BudgetError

    with pytest.raises(BudgetError, match="measured on the network"):
        allocate(L2Norm().score(graph), cost_model, target, "macs", "global")


def test_agreement_figures_by_hand():
    from bayesprune.bayes.agreement import cross_calibration, r_hat_max, summarise

    a = np.array([0.01, 0.02, 0.99, 0.5])
    b = np.array([0.10, 0.00, 0.97, 0.99])
    calibration = cross_calibration(a, b)
    # a's low channels (0, 1) are kept by b at 0.10 and 0.00; b's low channel (1) by a at 0.02
    assert calibration["kept_of_low"] == pytest.approx((0.10 + 0.00 + 0.02) / 3)
    # a's high channel (2) is kept by b at 0.97; b's high channels (2, 3) by a at 0.99 and 0.5
    assert calibration["kept_of_high"] == pytest.approx((0.97 + 0.99 + 0.5) / 3)
    assert (calibration["low_channels"], calibration["high_channels"]) == (2, 2)  # channels 0, 1 and 2, 3
    rng = np.random.default_rng(0)
    same = {"x": rng.normal(size=(400, 3))}
    shifted = {"x": np.r_[rng.normal(size=(200, 3)), rng.normal(3.0, 1.0, size=(200, 3))]}
    assert r_hat_max(same, 2) < 1.05 < r_hat_max(shifted, 2) and r_hat_max(same, 1) is None
    verdict = summarise(1.01, {"kept_of_low": 0.01, "kept_of_high": 0.99}, calibration, 0.9)
    assert verdict["passes"] and not verdict["split_half_passes"]
    assert verdict["failures"] == []
    failing = summarise(1.2, calibration, calibration, 0.9)
    assert not failing["passes"] and failing["failures"] == [
        "R-hat 1.200 > 1.05",  # kept of low, 0.04, holds
        "the other chain keeps 0.820 of the 2 channels one chain gives keep probability > 0.95 (should be > 0.95)"]


def test_compensated_pricing_needs_least_squares_and_not_cross_layer():
    from bayesprune.errors import ConfigError

    with pytest.raises(ConfigError, match="needs --reparameterize lsq"):
        BayesLaplace(compensated=True, reparameterize="mean")
    with pytest.raises(ConfigError, match="cross_layer"):
        BayesLaplace(compensated=True, reparameterize="lsq", cross_layer=True)
    assert BayesLaplace(compensated=True, reparameterize="lsq").compensated
    # auto, the default: on with lsq unless cross_layer, off otherwise; strings as --criterion-option gives them
    assert BayesLaplace(reparameterize="lsq").compensated and not BayesLaplace(reparameterize="mean").compensated
    assert not BayesLaplace(reparameterize="lsq", cross_layer=True).compensated
    assert not BayesLaplace(compensated="False", reparameterize="lsq").compensated
    assert BayesLaplace(compensated="TRUE", reparameterize="lsq").compensated
    with pytest.raises(ConfigError, match="must be auto, true or false"):
        BayesLaplace(compensated="sometimes", reparameterize="lsq")
