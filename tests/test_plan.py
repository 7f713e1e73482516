"""``bayesprune plan``: Bayesian model reduction by hand, a planted network, interval coverage where
the truth is known, masked cuts against physical ones, the command and ``--target-macs auto``."""
import json
import math

import numpy as np
import pytest
import torch

from bayesprune.bayes.gsm_quadrature import GSMPosterior, ScaleGrid
from bayesprune.bayes.priors import make_prior
from bayesprune.cli import main
from bayesprune.criteria import BayesLaplace
from bayesprune.criteria.base import Calibration
from bayesprune.decision import CostModel
from bayesprune.decision.selector import BudgetedSelector
from bayesprune.gates import ChannelGates
from bayesprune.groups import ChannelGraph
from bayesprune.plan import channel_log_evidence_change, evidence_curve, gaussian_reduction, spike_reduction
from bayesprune.plan.curve import discordance_floor, loss_interval, paired_loss
from bayesprune.masked_cuts import MaskedCuts
from bayesprune.surgery import compensate
from bayesprune.surgery.compensate import input_statistics
from bayesprune.training import evaluate
from helpers import planted_network

CPU = torch.device("cpu")


# --- Bayesian model reduction, by hand -----------------------------------------------------------
def test_spike_reduction_is_savage_dickey_by_hand():
    """Prior N(0, 1), one observation 2 with noise variance 1: posterior N(1, 1/2). Removing the
    parameter changes the log evidence by ln N(2; 0, 1) - ln N(2; 0, 2) = ln(2)/2 - 1."""
    by_hand = 0.5 * math.log(2) - 1.0
    assert spike_reduction(1.0, 0.5, 1.0) == pytest.approx(by_hand)
    evidence = (-0.5 * math.log(2 * math.pi) - 2.0) - (-0.5 * math.log(4 * math.pi) - 1.0)
    assert evidence == pytest.approx(by_hand)
    # Friston & Penny's Gaussian formula: a vanishing reduced variance is the spike; the same prior changes nothing
    assert gaussian_reduction(1.0, 0.5, 1.0, 1e-12) == pytest.approx(by_hand, abs=1e-6)
    assert gaussian_reduction(1.0, 0.5, 1.0, 1.0) == pytest.approx(0.0)
    # a reduced prior half as wide: ln(2 * 2 / (3 * 1)) / 2 - (2 * 1 - 3 * (2/3)^2) / 2, worked out by hand
    assert gaussian_reduction(1.0, 0.5, 1.0, 0.5) == pytest.approx(0.5 * math.log(4 / 3) - (2 - 4 / 3) / 2)


def test_channel_evidence_with_fixed_scales_is_the_gaussian_case():
    """On a one-node grid (tau = lambda = 1: prior N(0, 1)) each channel's change is the textbook
    ln N(zhat; 0, nu) - ln N(zhat; 0, 1 + nu); a weak signal gains from removal, a strong one loses."""
    grid = ScaleGrid(np.ones(1), np.zeros(1), np.ones(1), np.zeros(1))
    zhat, nu = np.array([2.0, 0.1, 3.0]), np.array([1.0, 1.0, 0.01])
    posterior = GSMPosterior.fit(zhat, nu, make_prior("horseshoe", tau0=1.0), grid)
    change = channel_log_evidence_change(posterior)
    mean, variance = zhat / (1 + nu), nu / (1 + nu)
    np.testing.assert_allclose(change, spike_reduction(mean, variance, 1.0))
    np.testing.assert_allclose(change[0], 0.5 * math.log(2) - 1.0)
    assert change[1] > 0 > change[2]


class _LinearCost:
    """Cost = channels kept x their price, one channel per group (a hand-computable cost model)."""

    def __init__(self, price):
        self.price, self.sizes = np.asarray(price, float), np.ones(len(price), dtype=np.int64)

    def cost(self, keep, kind="macs"):
        return np.asarray(keep, float) @ self.price


def test_evidence_curve_picks_the_best_nested_network():
    cost = _LinearCost([1.0, 2.0, 3.0, 4.0])
    groups = np.arange(4)
    curve = evidence_curve(np.array([0, 1, 2, 3]), np.array([2.0, -1.0, 3.0, -9.0]), cost, groups, "macs", 10.0)
    np.testing.assert_allclose(curve.log_evidence_change, [0, 2, 1, 4, -5])
    np.testing.assert_allclose(curve.fractions, [1.0, 0.9, 0.7, 0.4, 0.0])
    assert curve.best == 3 and curve.chosen_fraction == pytest.approx(0.4)
    assert curve.at(0.75) == pytest.approx(1.0)  # the largest prefix within 0.75 removes two channels
    nothing = evidence_curve(np.array([0, 1]), np.array([-1.0, -2.0]), cost, groups, "macs", 10.0)
    assert nothing.best == 0 and nothing.chosen_fraction == 1.0


def test_planted_network_evidence_removes_the_dead_channels_and_keeps_the_live_ones():
    """20,000 examples: enough for the data to support every live channel (with 512 some of the
    weakest are, honestly, not worth their Occam factor)."""
    net, data = planted_network(examples=20000)
    graph = ChannelGraph(net, data.test_x[:1])
    cost_model = CostModel.build(graph)
    criterion = BayesLaplace(draws=100, chains=2)
    criterion.prepare(net, graph, Calibration(data, CPU, 128, 4))
    change = channel_log_evidence_change(criterion.gsm)
    local = np.concatenate([np.arange(g.size) for g in graph.groups])
    first = graph.index_of(net.c1)
    dead = (criterion.group_of_channel == first) & (local < 4)
    assert change[dead].min() > 0 > change[~dead].max()
    full = cost_model.full("macs")
    order = criterion.posterior_cuts(BudgetedSelector(cost_model, criterion.group_of_channel, full, "macs",
                                                      0.9)).removal_order
    curve = evidence_curve(order, change, cost_model, criterion.group_of_channel, "macs", full)
    assert sorted(order[:curve.best]) == sorted(np.flatnonzero(dead))
    without_dead = cost_model.sizes - 4 * (np.arange(len(cost_model.sizes)) == first)
    assert curve.chosen_fraction == pytest.approx(cost_model.cost(without_dead, "macs") / full)


# --- intervals where the truth is known ---------------------------------------------------------
def test_posterior_intervals_cover_the_truth_at_their_level():
    """Scales and effects drawn from the horseshoe prior itself, observed with known noise: the
    posterior's 90% central intervals of the effects hold the true values about 90% of the time."""
    rng = np.random.default_rng(1)
    prior = make_prior("horseshoe", tau0=1.0)
    tau = abs(rng.standard_cauchy())
    lam = np.abs(rng.standard_cauchy(3000))
    z = rng.normal(0.0, tau * lam)
    nu = np.full(3000, 0.25)
    zhat = z + rng.normal(0.0, np.sqrt(nu))
    draws = GSMPosterior.fit(zhat, nu, prior).draw(2000, np.random.default_rng(2))["z"]
    low, high = np.quantile(draws, [0.05, 0.95], axis=0)
    coverage = np.mean((low <= z) & (z <= high))
    assert 0.87 <= coverage <= 0.93, coverage


def test_paired_loss_interval_covers_the_loss_measured_on_new_images_at_its_level():
    """One cut of a network (no posterior uncertainty): on each image the base and the cut are right
    or wrong with known joint probabilities. The loss measured on 2,000 held-out images gives an
    interval for the loss measured again on 5,000 new ones; it holds about 90% of the time."""
    rng = np.random.default_rng(3)
    # (base right, cut wrong), (base wrong, cut right), agree: true loss 0.05, discordance 0.07
    probabilities = [0.06, 0.01, 0.93]
    held, test, trials, inside = 2000, 5000, 1500, 0
    for _ in range(trials):
        lost, gained, _ = rng.multinomial(held, probabilities)
        loss, discordance = (lost - gained) / held, (lost + gained) / held
        low, high = loss_interval([loss], [discordance], held, 0.9, test_images=test,
                                  seed=int(rng.integers(1 << 30)), samples_per_draw=4000)
        lost, gained, _ = rng.multinomial(test, probabilities)
        inside += low <= (lost - gained) / test <= high
    assert 0.87 <= inside / trials <= 0.93, inside / trials


def test_discordance_floor_widens_the_interval_to_the_base_error_on_new_images_by_hand():
    # measured on images the base saw (or not recorded): at least its error on new ones; measured on new ones: none
    assert discordance_floor(True, 0.966) == pytest.approx(0.034)
    assert discordance_floor(None, 0.9) == pytest.approx(0.1)
    assert discordance_floor(False, 0.9) == 0.0 and discordance_floor(True, None) == 0.0
    # identical cuts on 1,000 images: with the floor, a normal of variance 0.04 / 1000 around 0,
    # so the 90% interval is +-1.645 sqrt(0.04 / 1000) = +-0.0104
    low, high = loss_interval([0.0], [0.0], 1000, 0.9, floor=0.04, samples_per_draw=200_000)
    assert (low, high) == pytest.approx((-0.0104, 0.0104), abs=3e-4)
    # without it only the half pseudo-count: q = 0.5 / 1001, +-1.645 sqrt(q / 1000)
    low, high = loss_interval([0.0], [0.0], 1000, 0.9, samples_per_draw=200_000)
    assert high == pytest.approx(1.645 * np.sqrt(0.5 / 1001 / 1000), rel=0.02)
    # a discordance above the floor is kept as measured
    assert loss_interval([0.0], [0.2], 1000, 0.9, floor=0.04) == loss_interval([0.0], [0.2], 1000, 0.9)


def test_paired_loss_is_the_accuracy_difference_and_the_disagreement_by_hand():
    base = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    cut = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    assert paired_loss(base, cut) == pytest.approx((4 / 6 - 3 / 6, 3 / 6))


# --- masked cuts are the cuts ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["mean", "lsq"])
def test_statistics_gathered_once_for_every_layer_compensate_as_streaming_does(method):
    """Gathered for every layer (as masked cuts do, once for many cuts), the statistics give the
    compensation a cut's own gathering gives: each layer samples its patches from its own stream."""
    net, data = planted_network(dead_in_first=0)
    batches = Calibration(data, CPU, 128, 2)
    removal = {"c1": [1, 5], "c2": [0]}
    a, b = [planted_network(dead_in_first=0)[0] for _ in range(2)]
    graph_a, graph_b = ChannelGraph(a, data.test_x[:1]), ChannelGraph(b, data.test_x[:1])
    compensate(graph_a, removal, batches.batches(), method, max_rows=64)
    statistics = input_statistics(graph_b, batches.batches(), method, max_rows=64)
    compensate(graph_b, removal, None, method, statistics=statistics)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    changed = [n for (n, p), q in zip(a.state_dict().items(), net.state_dict().values()) if not torch.equal(p, q)]
    assert changed  # the cut's consumers were compensated


@pytest.mark.parametrize("method", ["none", "mean", "lsq"])
def test_masked_cut_scores_as_the_physical_cut(method):
    net, data = planted_network(dead_in_first=0)
    calibration = Calibration(data, CPU, 128, 2)
    masked = MaskedCuts(net, data.test_x[:1], calibration, method)
    kept = np.ones(masked.gates.num_channels, dtype=bool)
    kept[[0, 3, 9, 12, 13]] = False
    accuracy = masked.accuracy(kept, data.train_x, data.train_y, CPU)
    physical = planted_network(dead_in_first=0)[0]
    graph = ChannelGraph(physical, data.test_x[:1])
    removal = ChannelGates(graph).removal(kept)
    assert sum(map(len, removal.values())) == 5
    if method != "none":
        compensate(graph, removal, calibration.batches(), method)
    graph.prune(removal)
    assert accuracy == evaluate(physical, data.train_x, data.train_y, CPU)
    with torch.no_grad():  # the per-image log-likelihoods too (what bayes's width check compares)
        nll = torch.nn.functional.cross_entropy(physical.eval()(data.train_x), data.train_y, reduction="none")
    np.testing.assert_allclose(masked.measure(kept, data.train_x, data.train_y, CPU)[1], -nll.double().numpy(),
                               atol=1e-5)
    assert masked.accuracy(np.ones_like(kept), data.train_x, data.train_y, CPU) == evaluate(
        net, data.train_x, data.train_y, CPU)  # the working copy is restored between cuts


# --- the command ---------------------------------------------------------------------------------
PLAN_QUICK = ["--train-subset", "900", "--calibration-batches", "2", "--posterior-draws", "10", "--plan-draws", "3",
              "--budgets", "0.8,0.4", "--quiet"]


def test_plan_writes_its_curve_widths_and_evidence(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", *PLAN_QUICK, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "predicted acc. %" in printed and "The data support removing about" in printed
    assert sorted(p.name for p in out.iterdir()) == ["plan.json", "plan.md", "plan.png"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["held_out_images"] == 900 - 256 and plan["evaluated_draws"] == 3
    assert [b["fraction"] for b in plan["budgets"]] == [0.8, 0.4]
    reference = plan["base"]["reference_accuracy"]  # the default model's card: its test accuracy
    assert reference == pytest.approx(0.966, abs=5e-4) and "card" in plan["base"]["reference"]
    for budget in plan["budgets"]:
        accuracy, loss = budget["accuracy"], budget["loss"]
        assert accuracy["low"] <= accuracy["mean"] <= accuracy["high"] and len(budget["draw_accuracy"]) == 3
        # predictions: the reference minus the loss paired with the base on the held-out images
        held = plan["base"]["held_out_accuracy"]
        assert budget["draw_loss"] == pytest.approx([held - a for a in budget["draw_accuracy"]], abs=1e-9)
        assert accuracy["mean"] == pytest.approx(reference - loss["mean"])
        assert (accuracy["low"], accuracy["high"]) == pytest.approx((reference - loss["high"], reference - loss["low"]))
        assert budget["decision_fraction"] <= budget["fraction"] + 1e-9
        for width in budget["widths"].values():
            assert 1 <= width["low"] <= width["mean"] <= width["high"] <= width["size"]
            assert 1 <= width["decision"] <= width["size"]
    evidence = plan["evidence"]
    assert 0 < evidence["chosen_fraction"] <= 1 and evidence["curve"]["fractions"][0] == pytest.approx(1.0)
    assert max(evidence["curve"]["log_evidence_change"]) == pytest.approx(evidence["log_evidence_change"])
    assert "passes" in plan["posterior_agreement"]
    assert "test" not in json.dumps(plan["budgets"])  # nothing of the test set in the prediction
    # the shipped base was trained on all 4000 training images: the held-out ones were seen, and the plan says so
    assert plan["held_out_seen_by_base"] is True and plan["base_train_images"] == 4000
    assert "base network was trained on" in printed and "biased" in plan["sentence"]
    # so its intervals take the cuts to disagree with the base on at least the card's test error
    assert plan["discordance_floor"] == pytest.approx(1 - reference) and "at least 3.4% of new" in plan["sentence"]


def test_held_out_images_are_taken_from_those_the_base_never_saw():
    from bayesprune.data.base import ImageData
    from bayesprune.plan.planner import held_out_split

    data = ImageData("toy", torch.arange(5000.0).view(-1, 1, 1, 1), torch.zeros(5000, dtype=torch.long),
                     torch.zeros(1, 1, 1, 1), torch.zeros(1, dtype=torch.long), 10)
    cpu = torch.device("cpu")
    first = lambda held: int(held.x[0].item())  # noqa: E731 - the index of the first held-out image
    # trained on the first 3000: the last 2000 are new to it
    held = held_out_split(data, None, 1024, cpu, base_train_images=3000)
    assert (len(held), first(held), held.seen_by_base) == (2000, 3000, False)
    # trained on the first 4500: only the last 500 are new, and the default takes just those
    held = held_out_split(data, None, 1024, cpu, base_train_images=4500)
    assert (len(held), first(held), held.seen_by_base) == (500, 4500, False)
    # trained on all of them: nothing is new; the default as before, recorded as seen
    held = held_out_split(data, None, 1024, cpu, base_train_images=5000)
    assert (len(held), first(held), held.seen_by_base) == (2000, 3000, True)
    # a --holdout that reaches into its training images is seen; unrecorded: unknown
    assert held_out_split(data, 2500, 1024, cpu, base_train_images=3000).seen_by_base is True
    assert held_out_split(data, None, 1024, cpu).seen_by_base is None


def test_a_base_trained_on_a_subset_records_it_and_plan_measures_on_the_unseen_rest(tmp_path, capsys):
    from bayesprune.pretrained import resolve_model
    from bayesprune.data import load_dataset

    base = tmp_path / "base.pt"
    assert main(["train", "--model", "smallcnn", "--data", "digits", "--epochs", "1", "--train-subset", "800",
                 "--quiet", "--out", str(base)]) == 0
    card = json.loads(base.with_suffix(".json").read_text())
    data = load_dataset("digits")
    train = len(data.train_y)
    assert card["train_images"] == 800 and card["split"].startswith(f"the first 800 of {train} train")
    assert resolve_model(str(base), data).train_images == 800  # read back from the checkpoint
    out = tmp_path / "plan"
    assert main(["plan", "--model", str(base), "--data", "digits", "--calibration-batches", "2",
                 "--posterior-draws", "10", "--plan-draws", "3", "--budgets", "0.8", "--quiet",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    plan = json.loads((out / "plan.json").read_text())
    assert plan["held_out_images"] == train - 800 and plan["held_out_seen_by_base"] is False
    assert "never saw" in printed and "biased" not in plan["sentence"]
    assert "never saw" in plan["base"]["reference"]  # no card: the held-out accuracy, unbiased here
    assert plan["discordance_floor"] == 0.0  # the discordance was measured on new images
    assert main(["train", "--model", "smallcnn", "--data", "digits", "--train-subset", str(train + 1),
                 "--quiet", "--out", str(tmp_path / "big.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is more than the {train} training images" in err[0]
    assert not (tmp_path / "big.pt").exists()


@pytest.mark.parametrize("args, message", [
    (["--budgets", "0.5,1.5"], "--budgets must be in (0, 1]"),
    (["--budgets", "half"], "--budgets must be comma-separated numbers"),
    (["--holdout", "10"], "--holdout must be >= 100"),
    (["--holdout", "800"], "overlaps the 256 training images the posterior reads"),
    (["--plan-draws", "1"], "--plan-draws must be >= 2"),
    (["--plan-draws", "50"], "more than the posterior's 20 draws"),
    (["--interval", "1"], "--interval must be in (0, 1)"),
    (["--model", "{tmp}/missing.pt"], "does not exist"),
    (["--out", "{tmp}/a-file"], "is a file"),
    (["--out", "{tmp}/full"], "is not empty"),
    (["--prior", "nope"], "unknown prior"),
    (["--base-accuracy", "93"], "--base-accuracy must be in [0, 1]"),
])
def test_plan_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    command = ["plan", *PLAN_QUICK, "--out", str(tmp_path / "out"), *args]
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("bayesprune: error:"), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_run_target_auto_prunes_to_the_evidence_budget_and_reports_it(tmp_path, capsys):
    out = tmp_path / "run"
    # adaptive BatchNorm (the default with --epochs 0) re-estimates every evaluated draw's statistics: +9 s
    # here, and nothing this test checks depends on it
    assert main(["run", "--target-macs", "auto", "--rounds", "1", "--epochs", "0", "--train-subset", "900",
                 "--test-subset", "200", "--calibration-batches", "2", "--posterior-draws", "10", "--quiet",
                 "--no-adapt-batchnorm", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    chosen = plan["evidence"]["chosen_fraction"]
    assert summary["budget"]["chosen_by"] == "evidence" and summary["budget"]["fraction"] == pytest.approx(chosen)
    assert summary["final_ratio"]["macs"] <= chosen + 1e-9
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["target_macs"] == pytest.approx(chosen) and config["target_chosen_by"] == "evidence"
    report = (out / "report" / "summary.md").read_text()
    assert "How far can this network be pruned?" in report and plan["sentence"] in report
    assert (out / "report" / "plan.png").is_file()


def test_plan_sentence_names_what_fails_of_the_posterior_agreement():
    from bayesprune.bayes.agreement import summarise
    from bayesprune.plan.planner import _trust

    calibration = {"kept_of_low": 0.05, "kept_of_high": 0.99, "low_channels": 2, "high_channels": 40}
    agreement = summarise(1.01, calibration, calibration, 0.9)
    text = _trust({"posterior_agreement": agreement})
    assert not agreement["passes"]
    assert ("does not agree with itself (the other chain keeps 0.050 of the 2 channels one chain gives keep "
            "probability < 0.05 (should be < 0.05)): treat these numbers as rough") in text
    holding = summarise(1.01, {**calibration, "kept_of_low": 0.01}, calibration, 0.9)
    assert holding["passes"] and _trust({"posterior_agreement": holding}) == ""
