"""The held-out check of ``bayes``'s widths (``check_widths``): its choice rule by hand, its
held-out images, and on a planted network where the answer is known."""
import numpy as np
import pytest
import torch

from bayesprune.bayes.width_check import HeldOutImages, WidthCheck
from bayesprune.criteria import BayesLaplace
from bayesprune.criteria.base import Calibration
from bayesprune.data import ImageData
from bayesprune.decision import CostModel, RoundBudget
from bayesprune.groups import ChannelGraph
from helpers import planted_network

CPU = torch.device("cpu")


class _Scores:
    """Stands in for MaskedCuts: each cut's (accuracy, per-image log-likelihoods) looked up by its flags."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def measure(self, kept, x, y, device):
        self.calls += 1
        accuracy, log_likelihood = self.table[tuple(int(k) for k in kept)]
        return accuracy, np.asarray(log_likelihood, dtype=float)


def _check_with(table, images=4) -> WidthCheck:
    check = WidthCheck()
    x = torch.zeros(images, 1, 2, 2)
    check._masked, check._device = _Scores(table), CPU
    check._held_out = HeldOutImages(x, torch.zeros(images, dtype=torch.long), overlaps_calibration=False)
    return check


def test_a_tighter_cap_is_chosen_only_when_it_beats_the_runs_cap_beyond_the_noise():
    # per-image log-likelihoods of 4 held-out images; the run's cap (0.9) first
    run_cap = (0.5, [-1.0, -1.0, -1.0, -1.0])
    better = (0.7, [-0.5, -0.6, -0.4, -0.5])  # differences 0.5, 0.4, 0.6, 0.5: mean 0.5, sd 0.0816
    check = _check_with({(0, 1): run_cap, (1, 1): better, (1, 0): better})
    best, record = check.choose([("run", np.array([0, 1])), ("cap 0.6", np.array([1, 1])),
                                 ("uniform", np.array([1, 0]))])
    # standard error 0.0816 / 2 = 0.0408; 0.5 > 2 x 0.0408, and cap 0.6 is the first of the two best
    assert best == 1 and record["chosen"] == "cap 0.6"
    assert record["best_gain_nats"] == pytest.approx(0.5)
    assert record["best_gain_standard_error"] == pytest.approx(np.std([0.5, 0.4, 0.6, 0.5], ddof=1) / 2)
    assert record["held_out_log_likelihood"] == pytest.approx([-1.0, -0.5, -0.5])
    assert record["held_out_accuracy"] == [0.5, 0.7, 0.7] and record["held_out_images"] == 4
    # a noisy gain: differences +1, -0.8, +1, -0.8 (mean 0.1, standard error 0.52): the run's cap stands
    noisy = (0.5, [0.0, -1.8, 0.0, -1.8])
    check = _check_with({(0, 1): run_cap, (1, 1): noisy})
    best, record = check.choose([("run", np.array([0, 1])), ("cap 0.6", np.array([1, 1]))])
    assert best == 0 and record["chosen"] == "run" and record["best_gain_nats"] == pytest.approx(0.1)
    # a cap that does not bind repeats the run's cut: it is measured once and scored alike
    check = _check_with({(0, 1): run_cap, (1, 1): better})
    best, record = check.choose([("run", np.array([0, 1])), ("cap 0.75", np.array([0, 1])),
                                 ("cap 0.6", np.array([1, 1]))])
    assert check._masked.calls == 2 and record["held_out_log_likelihood"] == pytest.approx([-1.0, -1.0, -0.5])
    assert record["chosen"] == "cap 0.6"


def test_with_keep_chosen_rule_a_tie_keeps_the_rule_an_earlier_cut_chose():
    """Hysteresis: uniform widths beat the run's cut beyond the noise in the first check; in the next
    the run's cut is better by a noisy margin (differences 0.5, -0.3, 0.5, -0.3: mean 0.1, standard
    error 0.231). By default that tie returns to the run's own widths; with ``keep_chosen_rule``
    uniform widths stand, and a clear win (differences 0.5, 0.4, 0.6, 0.5) still moves the rule."""
    run_cut, uniform_cut = np.array([1, 1, 0]), np.array([1, 0, 1])
    candidates = [("run", run_cut), ("uniform", uniform_cut)]
    first = {(1, 1, 0): (0.5, [-1.0] * 4), (1, 0, 1): (0.7, [-0.5, -0.6, -0.4, -0.5])}
    tie = {(1, 1, 0): (0.6, [-0.5, -0.8, -0.5, -0.8]), (1, 0, 1): (0.6, [-1.0, -0.5, -1.0, -0.5])}
    clear = {(1, 1, 0): (0.7, [-0.5, -0.6, -0.4, -0.5]), (1, 0, 1): (0.5, [-1.0] * 4)}
    net, data = planted_network()
    cost_model = CostModel.build(ChannelGraph(net, data.test_x[:1]))
    full = cost_model.cost(cost_model.sizes, "macs")
    budget = RoundBudget(0.8 * full, 0.5 * full, "macs", "global", 0.9, cuts_left=2)
    for keep in (False, True):
        check = _check_with(first)
        check.keep_chosen_rule, check.caps = keep, ()  # the run's rule and uniform widths only
        cut_at = {"global": ("selector", _Kept(run_cut)), "uniform": ("selector", _Kept(uniform_cut))}
        chosen = check.checked_cut(budget, cost_model, lambda b: cut_at[b.allocation], None, False)[0]
        assert chosen.allocation == "uniform"
        assert check.standing_rule == ("uniform" if keep else "run")
        check._masked = _Scores(tie)
        best, record = check.choose(candidates)
        assert record["best_gain_nats"] == pytest.approx(0.1 if keep else 0.0)
        assert record["chosen"] == ("uniform" if keep else "run") and record["standing"] == record["chosen"]
        check._masked = _Scores(clear)
        assert check.choose(candidates)[1]["chosen"] == "run"


class _Kept:
    def __init__(self, decision):
        self.decision = decision


def test_candidates_are_the_tighter_caps_then_uniform_widths():
    budget = RoundBudget(10.0, 5.0, "macs", "global", 0.6)
    candidates = WidthCheck().candidates(budget)
    assert [label for label, _ in candidates] == ["cap 0.45", "cap 0.3", "uniform"]
    assert [b.max_fraction for _, b in candidates] == [0.45, 0.3, 0.6]
    assert [b.allocation for _, b in candidates] == ["global", "global", "uniform"]
    assert all(b.target == 10.0 and b.final_target == 5.0 for _, b in candidates)


def test_choose_before_prepare_is_a_bug_not_a_silent_default():
    with pytest.raises(RuntimeError, match="prepare"):
        WidthCheck().choose([(0.9, np.ones(2))])


def _calibration(train: int, batch=10, batches=3) -> Calibration:
    x = torch.arange(train, dtype=torch.float32).reshape(train, 1, 1, 1)
    return Calibration(ImageData("t", x, torch.zeros(train, dtype=torch.long), x[:2], torch.zeros(2), 2),
                       CPU, batch, batches)


def test_held_out_images_are_the_last_ones_the_calibration_does_not_read():
    held = HeldOutImages.of(_calibration(200), count=50)  # the calibration reads images 0..29
    assert held.x.flatten().tolist() == list(range(150, 200)) and not held.overlaps_calibration
    held = HeldOutImages.of(_calibration(200), count=500)  # all 170 it leaves
    assert held.x.flatten().tolist() == list(range(30, 200)) and not held.overlaps_calibration
    held = HeldOutImages.of(_calibration(60), count=500)  # 30 left, under 100: the last 60, overlapping (recorded)
    assert held.x.flatten().tolist() == list(range(60)) and held.overlaps_calibration


def _planted_cut(cap_of_run=0.9, **options):
    net, data = planted_network()  # c1: 8 channels, 4 dead (zero filters and BatchNorm); c2: 4 live
    graph = ChannelGraph(net, data.test_x[:1])
    cost_model = CostModel.build(graph)
    criterion = BayesLaplace(draws=100, chains=2, check_widths=True, **options)
    calibration = Calibration(data, CPU, 128, 2)  # reads 256 of the 512 images; the check the other 256
    criterion.prepare(net, graph, calibration)
    dead_layer = np.array([g.name == "c1" for g in graph.groups])
    target = cost_model.cost(cost_model.sizes - 4 * dead_layer, "macs")  # room for exactly the dead four
    removal = criterion.select(graph, cost_model, RoundBudget(target, target, "macs", "global", cap_of_run))
    return criterion, removal


def test_planted_dead_channels_go_at_the_run_cap_and_no_tighter_cap_displaces_them():
    criterion, removal = _planted_cut()
    record = criterion.round_record()["width_check"]
    assert sorted(removal["c1"]) == [0, 1, 2, 3] and removal["c2"] == []
    assert record["chosen"] == "run" and record["held_out_images"] == 256 and not record["overlaps_calibration"]
    labels, log_likelihood = record["candidates"], record["held_out_log_likelihood"]
    # caps 0.9 (the run's), 0.75, 0.6 let c1 lose its 4 dead channels (floor(0.6 * 8) = 4): the same cut,
    # scored alike; under 0.45, or with uniform widths, live channels go, which held-out images cannot prefer
    assert labels[:3] == ["run", "cap 0.75", "cap 0.6"] and labels[-1] == "uniform"
    assert len(set(log_likelihood[:3])) == 1
    assert record["best_gain_nats"] <= 2 * record["best_gain_standard_error"]  # nothing beats it beyond the noise


@pytest.mark.parametrize("fold_means", [False, True])
def test_the_checks_input_statistics_are_those_the_runs_compensation_would_gather(fold_means):
    """The width check gathers every layer's input statistics of the (folded) network it cuts; the
    engine's compensation reads them instead of gathering its own: they must be equal, under the
    run's seed and method, and refused under another."""
    from bayesprune.gates import ChannelGates
    from bayesprune.surgery import fold_gates
    from bayesprune.surgery.compensate import input_statistics

    criterion, _ = _planted_cut(reparameterize="lsq", fold_means=fold_means, seed=3)
    net, data = planted_network()
    graph = ChannelGraph(net, data.test_x[:1])
    if fold_means:
        fold_gates(ChannelGates(graph), criterion.reparameterization())
    gathered = criterion.input_statistics().for_model(net, "lsq", 3)
    expected = input_statistics(graph, Calibration(data, CPU, 128, 2).batches(), "lsq", seed=3)
    assert set(gathered) == set(expected) and len(expected) == 3
    for module, stats in expected.items():
        torch.testing.assert_close(gathered[module].patch_gram, stats.patch_gram)
        torch.testing.assert_close(gathered[module].channel_sum, stats.channel_sum)
    assert criterion.input_statistics().for_model(net, "mean", 3) is None
    assert criterion.input_statistics().for_model(net, "lsq", 0) is None


def test_the_check_reuses_the_statistics_the_compensated_pricing_gathered(monkeypatch):
    """With compensated=true the criterion gathers every layer's lsq statistics in prepare; the
    width check's masked cuts read those instead of gathering them again."""
    import bayesprune.masked_cuts as masked_cuts

    gathered = []
    original = masked_cuts.input_statistics
    monkeypatch.setattr(masked_cuts, "input_statistics", lambda *a, **k: gathered.append(1) or original(*a, **k))
    _planted_cut(reparameterize="lsq", compensated=False)
    assert len(gathered) == 1  # the check gathers when nothing was gathered before
    criterion, _ = _planted_cut(reparameterize="lsq", compensated=True)
    assert len(gathered) == 1 and criterion.shares is not None and criterion.round_record()["width_check"]


def test_obs_inside_the_layers_gathers_the_statistics_the_shares_and_the_check_read(monkeypatch):
    """With within=obs, obs gathers every layer's lsq statistics; the compensated shares and the width
    check read those: one gathering per round."""
    import importlib

    import bayesprune.criteria.obs as obs
    import bayesprune.masked_cuts as masked_cuts
    from bayesprune.criteria import make_criterion

    compensate = importlib.import_module("bayesprune.surgery.compensate")  # the package exports a function so named

    gathered = []
    original = compensate.input_statistics
    counting = lambda *a, **k: gathered.append(1) or original(*a, **k)  # noqa: E731
    for module in (obs, masked_cuts, compensate):
        monkeypatch.setattr(module, "input_statistics", counting)
    import bayesprune.surgery.residual as residual

    solved = []  # compensated_share's prefix solves: obs's greedy pass holds the same shares
    original_share = residual.compensated_share
    monkeypatch.setattr(residual, "compensated_share", lambda *a, **k: solved.append(1) or original_share(*a, **k))
    criterion, _ = _planted_cut(reparameterize="lsq", compensated=True, within=make_criterion("obs"))
    assert len(gathered) == 1 and criterion.shares is not None and criterion.round_record()["width_check"]
    assert not solved
    # the same as compensated_share's (layers of 8 and 4 channels: its 16 points are every prefix)
    net, data = planted_network()
    graph = ChannelGraph(net, data.test_x[:1])
    statistics = criterion.gathered.for_model(net, "lsq", 0)
    starts = np.cumsum([0] + [g.size for g in graph.groups])
    local = {g.name: order - start for g, order, start in zip(graph.groups, criterion.orders, starts)}
    expected = original_share(graph, local, statistics)
    for group, shares in zip(graph.groups, criterion.shares):
        assert shares.tolist() == pytest.approx(expected[group.name].tolist(), abs=1e-8)


def test_no_check_when_the_widths_are_not_the_posteriors():
    net, data = planted_network()
    graph = ChannelGraph(net, data.test_x[:1])
    cost_model = CostModel.build(graph)
    criterion = BayesLaplace(draws=50, chains=2, check_widths=True)
    criterion.prepare(net, graph, Calibration(data, CPU, 128, 2))
    target = 0.7 * cost_model.full("macs")
    criterion.select(graph, cost_model, RoundBudget(target, target, "macs", "uniform", 0.9))
    assert "width_check" not in criterion.round_record()


def test_the_prediction_of_the_final_cut_keeps_the_width_rule_the_check_chose():
    """A round cut at a tighter cap than the run's predicts the final cut at that cap, compounded over
    the cuts left; a rule that cannot reach the final target falls back to the run's, and says so."""
    from dataclasses import replace

    from bayesprune.bayes.width_check import prediction_budget

    net, data = planted_network()
    cost_model = CostModel.build(ChannelGraph(net, data.test_x[:1]))
    full = cost_model.full("macs")
    run = RoundBudget(0.8 * full, 0.5 * full, "macs", "global", 0.9, cuts_left=2)
    final, rule = prediction_budget(replace(run, max_fraction=0.3), run, cost_model)
    assert rule == "chosen" and final.max_fraction == pytest.approx(0.51) and final.target == 0.5 * full
    final, rule = prediction_budget(run, run, cost_model)
    assert rule == "chosen" and final.max_fraction == pytest.approx(0.99)
    too_tight = replace(run, max_fraction=0.05)  # 1 - 0.95^2 of every layer cannot halve the MACs
    final, rule = prediction_budget(too_tight, run, cost_model)
    assert rule == "run" and final.max_fraction == pytest.approx(0.99)


def test_with_check_prediction_the_final_cut_is_predicted_through_the_same_held_out_check():
    """Where fine-tuning anneals toward the predicted final cut, the prediction is chosen like a cut:
    the run's rules, each tighter cap compounded over the cuts left, uniform widths, scored on
    held-out images; the dead channels stay predicted gone whichever rule wins."""
    net, data = planted_network()  # c1: 8 channels, 4 dead; c2: 4 live
    graph = ChannelGraph(net, data.test_x[:1])
    cost_model = CostModel.build(graph)
    dead_layer = np.array([g.name == "c1" for g in graph.groups])
    target = cost_model.cost(cost_model.sizes - 4 * dead_layer, "macs")  # this cut: room for the dead four
    final_target = cost_model.cost(cost_model.sizes - 6 * dead_layer, "macs")  # the run's end: two live ones more
    criterion = BayesLaplace(draws=100, chains=2, check_widths=True, check_prediction=True)
    criterion.prepare(net, graph, Calibration(data, CPU, 128, 2))
    criterion.select(graph, cost_model, RoundBudget(target, final_target, "macs", "global", 0.9, cuts_left=2))
    record = criterion.round_record()["width_check"]
    prediction = record["prediction"]
    assert prediction["candidates"][0] == "run" and prediction["candidates"][-1] == "uniform"
    assert record["prediction_rule"] == prediction["chosen"] in prediction["candidates"]
    assert len(prediction["held_out_log_likelihood"]) == len(prediction["candidates"])
    c1 = [g.name for g in graph.groups].index("c1")
    dead = np.flatnonzero(criterion.group_of_channel == c1)[:4]
    assert (criterion.prune_probability()[dead] > 0.95).all()
    # two more of c1 (or their cost elsewhere) go by the end: the prediction removes more than this cut
    assert criterion.prune_probability().sum() > 4.5


def test_check_prediction_is_on_where_fine_tuning_anneals_toward_the_prediction():
    from bayesprune.config import PruneConfig

    assert BayesLaplace.from_config(PruneConfig()).check_prediction  # the default anneals toward the final cut
    # current: the prediction only feeds the report
    assert not BayesLaplace.from_config(PruneConfig(anneal_target="current")).check_prediction
    assert BayesLaplace.from_config(PruneConfig(anneal_target="last")).check_prediction
    assert BayesLaplace.from_config(PruneConfig(anneal_target="final")).check_prediction
    assert not BayesLaplace.from_config(PruneConfig(anneal_target="final", annealing=False)).check_prediction
    assert not BayesLaplace.from_config(PruneConfig(anneal_target="last",
                                                    criterion_options={"check_prediction": "false"})).check_prediction
    # each cut follows the checked prediction wherever it is checked, unless told not to
    assert BayesLaplace.from_config(PruneConfig()).follow_prediction
    assert BayesLaplace.from_config(PruneConfig(epochs=0.0)).follow_prediction  # without fine-tuning too
    assert not BayesLaplace.from_config(PruneConfig(anneal_target="current")).follow_prediction
    unchecked = BayesLaplace.from_config(PruneConfig(criterion_options={"check_widths": "false"}))
    assert not unchecked.check_prediction and not unchecked.follow_prediction
    assert not BayesLaplace.from_config(PruneConfig(criterion_options={"follow_prediction": "false"})).follow_prediction


def test_with_follow_prediction_this_cut_takes_the_rule_the_final_cuts_check_chose():
    """The posterior's widths win this (mild) cut, uniform widths win the predicted final cut beyond
    the noise: by default each keeps its own choice; with ``follow_prediction`` this cut is made
    under the final cut's rule too, and the record keeps what this cut's own check chose."""
    from types import SimpleNamespace

    net, data = planted_network()
    cost_model = CostModel.build(ChannelGraph(net, data.test_x[:1]))
    full = cost_model.cost(cost_model.sizes, "macs")
    budget = RoundBudget(0.8 * full, 0.5 * full, "macs", "global", 0.9, cuts_left=2)
    flags = {(True, "global"): (1, 1, 0), (True, "uniform"): (1, 0, 1),  # this cut: run's, uniform
             (False, "global"): (0, 1, 1), (False, "uniform"): (0, 0, 1)}  # the final cut: run's, uniform

    def cut_at(candidate):
        kept = np.array(flags[(candidate.target == budget.target, candidate.allocation)])
        return f"selector {candidate.allocation}", SimpleNamespace(decision=kept)

    good, bad = (0.9, [-0.1, -0.1, -0.2, -0.1]), (0.5, [-1.0, -0.9, -1.0, -1.1])
    scores = {(1, 1, 0): good, (1, 0, 1): bad, (0, 1, 1): bad, (0, 0, 1): good}
    for follow in (False, True):
        check = _check_with(scores)
        check.caps = ()  # the run's rule and uniform widths only
        chosen, selector, cuts, final, record = check.checked_cut(budget, cost_model, cut_at, None, True, follow)
        assert record["prediction"]["chosen"] == "uniform" and final.allocation == "uniform"
        assert final.target == budget.final_target
        if follow:
            assert record["chosen"] == "uniform" and record["chosen_for_cut"] == "run"
            assert chosen.allocation == "uniform" and selector == "selector uniform"
            assert cuts.decision.tolist() == [1, 0, 1] and chosen.target == budget.target
        else:
            assert record["chosen"] == "run" and "chosen_for_cut" not in record
            assert chosen.allocation == "global" and cuts.decision.tolist() == [1, 1, 0]


def test_follow_prediction_needs_the_checked_prediction():
    from bayesprune.errors import ConfigError

    with pytest.raises(ConfigError, match="check_prediction"):
        BayesLaplace(check_prediction=False, follow_prediction=True)
    assert BayesLaplace(check_prediction=True, follow_prediction=True).follow_prediction


def test_adapt_batchnorm_reaches_the_checks_masked_cuts_and_needs_the_check():
    from bayesprune.errors import ConfigError

    with pytest.raises(ConfigError, match="check_widths=true"):
        BayesLaplace(check_widths=False, adapt_batchnorm=True)
    criterion = BayesLaplace(adapt_batchnorm=True)
    net, data = planted_network(dead_in_first=0)
    criterion.width_check.prepare(net, data.test_x[:1], Calibration(data, CPU, 128, 2))
    assert criterion.width_check._masked.adapt_batchnorm
    kept = np.ones(criterion.width_check._masked.gates.num_channels, dtype=bool)
    assert criterion.width_check.choose([("run", kept)])[1]["adapted_batchnorm"] is True
    assert not BayesLaplace().width_check.adapt_batchnorm
    # a run that adapts after each cut (--adapt-batchnorm) has its check score adapted candidates
    from bayesprune.config import PruneConfig

    assert BayesLaplace.from_config(PruneConfig(adapt_batchnorm=True)).width_check.adapt_batchnorm
    assert not BayesLaplace.from_config(PruneConfig()).width_check.adapt_batchnorm
    assert BayesLaplace.from_config(PruneConfig(adapt_batchnorm=True,
                                                criterion_options={"check_widths": "false"})).width_check is None


def test_check_z_is_two_standard_errors_after_fine_tuning_and_the_held_out_best_without():
    """Without fine-tuning the check's score is the kept network's own: its best candidate is taken
    (z = 0), where a noisy gain of 0.1 nats (standard error 0.52) left the run's cut at z = 2."""
    from bayesprune.config import PruneConfig
    from bayesprune.errors import ConfigError

    assert BayesLaplace.from_config(PruneConfig(epochs=1)).width_check.z == 2.0
    assert BayesLaplace.from_config(PruneConfig(epochs=0)).width_check.z == 0.0
    assert BayesLaplace.from_config(PruneConfig(epochs=0, criterion_options={"check_z": "1.5"})).width_check.z == 1.5
    with pytest.raises(ConfigError, match="check_z must be >= 0"):
        BayesLaplace(check_z=-1)
    noisy = {(0, 1): (0.5, [-1.0] * 4), (1, 1): (0.5, [0.0, -1.8, 0.0, -1.8])}
    for z, chosen in ((2.0, "run"), (0.0, "cap 0.6")):
        check = _check_with(noisy)
        check.z = z
        assert check.choose([("run", np.array([0, 1])), ("cap 0.6", np.array([1, 1]))])[1]["chosen"] == chosen
