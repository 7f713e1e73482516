"""Budgeted allocation: exact cost terms, budgets met, layers never emptied."""
import re

import numpy as np
import pytest
import torch

from bayesprune.decision import Budget, CostModel, allocate
from bayesprune.errors import BudgetError
from bayesprune.groups import ChannelGraph, count_macs_params
from helpers import Chain


def _graph():
    torch.manual_seed(0)
    model = Chain()
    return model, ChannelGraph(model, torch.randn(1, 1, 5, 5))


def test_cost_model_by_hand():
    model, graph = _graph()
    cost = CostModel.build(graph)
    keep = {"c1": 3, "c2": 2}
    k = np.array([keep[n] for n in cost.names], dtype=float)
    # 25 positions: c1 9*1*k1, c2 9*k1*k2, c3 (1x1 with bias) 1*k2*2 + 2 bias ops per position
    expected_macs = 25 * (9 * 3 + 9 * 3 * 2 + 2 * 2 + 2)
    expected_params = 9 * 3 + 9 * 3 * 2 + 2 * 2 + 2
    assert cost.cost(k, "macs") == pytest.approx(expected_macs)
    assert cost.cost(k, "params") == pytest.approx(expected_params)
    graph.prune({"c1": [0], "c2": [1, 2, 3, 4]})
    assert count_macs_params(model, graph.inputs) == (expected_macs, expected_params)


def _scores(graph, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {grp.name: torch.rand(grp.size, generator=g) for grp in graph.groups}


@pytest.mark.parametrize("method", ["uniform", "score-global"])
@pytest.mark.parametrize("fraction", [0.9, 0.6, 0.35])
def test_allocation_meets_budget_and_keeps_every_layer(method, fraction):
    model, graph = _graph()
    cost = CostModel.build(graph)
    target = fraction * cost.full()
    removal = allocate(_scores(graph), cost, target, "macs", method, max_fraction=0.9)
    keep = cost.sizes - np.array([len(removal[n]) for n in cost.names])
    assert cost.cost(keep) <= target and (keep >= 1).all()


def test_lowest_scores_go_first():
    model, graph = _graph()
    cost = CostModel.build(graph)
    scores = {"c1": torch.tensor([4.0, 1.0, 3.0, 2.0]), "c2": torch.tensor([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])}
    removal = allocate(scores, cost, 0.5 * cost.full(), "macs", "uniform")
    for name, idxs in removal.items():
        order = torch.argsort(scores[name]).tolist()
        assert idxs == sorted(order[:len(idxs)])


def test_global_ranks_across_layers_by_relative_score():
    model, graph = _graph()
    cost = CostModel.build(graph)
    # c1's channel 0 is far below its layer's mean; every c2 channel is at its mean
    scores = {"c1": torch.tensor([0.1, 10.0, 10.0, 10.0]), "c2": torch.ones(6)}
    removal = allocate(scores, cost, cost.full() - 1, "macs", "score-global")
    assert removal == {"c1": [0], "c2": []}


def test_unreachable_budget_and_bad_fractions():
    model, graph = _graph()
    cost = CostModel.build(graph)
    with pytest.raises(BudgetError, match="cannot be met without emptying layers"):
        allocate(_scores(graph), cost, 0.001 * cost.full(), "macs", "uniform")
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(BudgetError):
            Budget(bad)
    assert allocate(_scores(graph), cost, cost.full(), "macs") == {"c1": [], "c2": []}


def test_a_round_predicts_a_final_target_that_only_several_cuts_reach():
    """The final target of a multi-round run may lie below what one cut can reach: a round's
    prediction selects toward it (removing what the caps allow) instead of refusing it, and the
    reachability of the round's own target is checked once, by the round (not again by its selector)."""
    from bayesprune.decision import RoundBudget

    model, graph = _graph()
    cost = CostModel.build(graph)
    one_cut_floor = cost.cost(cost.sizes - np.floor(0.9 * cost.sizes), "macs")
    budget = RoundBudget(0.5 * cost.full(), 0.5 * one_cut_floor, "macs", "global", 0.9)
    budget.check_reachable(cost)  # this round's target: fine
    groups = np.repeat(np.arange(len(cost.sizes)), cost.sizes.astype(int))
    final = budget.selector(cost, groups, budget.final_target)
    kept, _ = final.select(np.arange(len(groups), dtype=float))
    assert (np.bincount(groups[~kept]) == budget.cap(cost)).all()  # as far as one cut may go
    with pytest.raises(BudgetError, match="cannot be met"):
        RoundBudget(budget.final_target, budget.final_target, "macs", "global", 0.9).check_reachable(cost)


def test_round_targets():
    assert Budget(0.25, rounds=2).targets() == pytest.approx([0.5, 0.25])
    assert Budget(0.4, rounds=3, schedule="linear").targets() == pytest.approx([0.8, 0.6, 0.4])
    assert Budget(0.5, rounds=2).targets(start=2.0) == pytest.approx([1.0, 0.5])  # after --expand


@pytest.mark.parametrize("options, message", [
    ({"rounds": 0}, "--rounds must be >= 1"), ({"rounds": float("nan")}, "--rounds must be >= 1"),
    ({"schedule": "cubic"}, "unknown --schedule"), ({"allocation": "magic"}, "unknown --allocation"),
    ({"max_fraction": 1.0}, "--max-prune-fraction must be in (0, 1)"),
    ({"max_fraction": float("nan")}, "--max-prune-fraction must be in (0, 1)"),
    ({"round_to": 8, "allocation": "global"}, "needs --allocation uniform"),
    ({"kind": "flops"}, "must be one of macs, params, latency")])
def test_a_budget_is_validated_once_when_made(options, message):
    from bayesprune.errors import BayesPruneError

    with pytest.raises(BayesPruneError, match=re.escape(message)):
        Budget(0.5, **options)


def test_a_round_budget_carries_the_rules_to_the_allocation():
    _, graph = _graph()
    cost = CostModel.build(graph)
    whole = Budget(0.5, rounds=2, allocation="uniform", round_to=2)
    first, budget = whole.for_round(1, cost.full("macs")), whole.for_round(2, cost.full("macs"))
    assert first.target == pytest.approx(0.5 ** 0.5 * cost.full("macs"))
    assert first.final_target == budget.target == pytest.approx(0.5 * cost.full("macs"))
    # widths are rounded in the last cut only: a rounded width cannot be widened again later
    assert first.round_to == 1 and budget.round_to == 2
    removal = budget.allocate(_scores(graph), cost)
    kept = [g.size - len(removal[g.name]) for g in graph.groups]
    assert all(k % 2 == 0 for k in kept) and cost.cost(np.array(kept), "macs") <= budget.target


def test_aligned_removals_by_hand():
    from bayesprune.decision.allocation import aligned

    # keep 11 -> 16, 22 -> 24; a group of 6 is smaller than 8, so it keeps all 6
    np.testing.assert_array_equal(aligned(np.array([16, 32, 6]), np.array([5, 10, 3]), 8), [0, 8, 0])
    np.testing.assert_array_equal(aligned(np.array([16, 32]), np.array([5, 10]), 1), [5, 10])


@pytest.mark.parametrize("fraction", [0.7, 0.5, 0.3])
def test_round_to_keeps_multiples_and_meets_the_budget(fraction):
    from bayesprune.decision.selector import BudgetedSelector
    from bayesprune.nets import Architecture, build_model

    model = build_model(Architecture("smallcnn", 1, 10, 28))
    graph = ChannelGraph(model, torch.randn(1, 1, 28, 28))
    cost = CostModel.build(graph)
    target = fraction * cost.full()
    removal = allocate(_scores(graph), cost, target, "macs", "uniform", max_fraction=0.9, round_to=8)
    keep = cost.sizes - np.array([len(removal[n]) for n in cost.names])
    assert cost.cost(keep) <= target and (keep % 8 == 0).all() and (keep >= 8).all()
    group_of_channel = np.repeat(np.arange(len(cost.sizes)), cost.sizes.astype(int))
    selector = BudgetedSelector(cost, group_of_channel, target, "macs", 0.9, "uniform", round_to=8)
    kept = selector.select(np.random.default_rng(0).random(len(group_of_channel)))[0]
    per_group = np.bincount(group_of_channel[kept], minlength=len(cost.sizes))
    assert (per_group % 8 == 0).all() and cost.cost(per_group) <= target
    with pytest.raises(BudgetError, match="uniform only"):
        allocate(_scores(graph), cost, target, "macs", "score-global", round_to=8)


def test_allocations_are_objects_behind_one_counts_contract():
    from bayesprune.decision.allocation import UniformWidths, as_allocation

    _, graph = _graph()
    cost = CostModel.build(graph)
    scores = _scores(graph)
    target = 0.6 * cost.full("macs")
    assert allocate(scores, cost, target, "macs", UniformWidths()) == allocate(scores, cost, target, "macs", "uniform")
    assert isinstance(as_allocation("uniform"), UniformWidths)

    class FixedCounts:  # a user's allocation: remove one channel of c1 and two of c2
        def counts(self, cost_model, target, kind, cap, round_to=1, orders=None, scores=None):
            return np.array([1, 2])

    removal = allocate(scores, cost, target, "macs", FixedCounts())
    for name, count in zip(cost.names, (1, 2)):  # each group's lowest-scoring channels, as many as counted
        assert removal[name] == sorted(np.argsort(scores[name].numpy(), kind="stable")[:count].tolist())


def test_a_rounds_final_budget_compounds_its_cap_over_the_cuts_left():
    """Round r of R predicts the final cut as one cut of today's network: each of the R - r + 1
    cuts left may take ``max_fraction`` of what a layer has, so 1 - (1 - 0.3)^3 = 0.657 in round 1."""
    budget = Budget(0.2, rounds=3, allocation="global", max_fraction=0.3)
    rounds = [budget.for_round(r, 100.0) for r in (1, 2, 3)]
    assert [b.cuts_left for b in rounds] == [3, 2, 1]
    final = [b.final() for b in rounds]
    assert [f.max_fraction for f in final] == pytest.approx([0.657, 0.51, 0.3])
    assert all(f.target == pytest.approx(20.0) and f.final_target == pytest.approx(20.0) and f.cuts_left == 1
               and f.allocation == "global" for f in final)
