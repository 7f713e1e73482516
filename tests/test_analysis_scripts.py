"""The analysis scripts' helpers: tp_compare --resume (keeps measured cells, refuses other settings), the figure."""
import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))
import tp_compare  # noqa: E402


def _args(**changes):
    base = {"model": "m", "methods": "l1", "targets": "0.5", "seeds": 1, "epochs": 1.0, "out": "x",
            "resume": True, "quick": False, "table": None}
    return argparse.Namespace(**{**base, **changes})


def test_resume_keeps_rows_with_their_commits_and_refuses_other_settings(tmp_path):
    out = tmp_path / "result.json"
    row = {"method": "l1", "seed": 0, "target": 0.5, "accuracy": 0.9}
    out.write_text(json.dumps({"arguments": vars(_args(resume=False)), "commit": "abc", "torch_threads": 2,
                               "rows": [row]}))
    rows, calls = tp_compare.earlier_rows(out, _args(methods="l1,l2", seeds=3, targets="0.5,0.2"),
                                         "--resume")
    assert rows == [{**row, "commit": "abc", "torch_threads": 2}] and calls == [vars(_args(resume=False))]
    with pytest.raises(SystemExit, match="other settings \\(epochs\\)"):
        tp_compare.earlier_rows(out, _args(epochs=2.0), "--resume")
    with pytest.raises(SystemExit, match="does not exist"):
        tp_compare.earlier_rows(tmp_path / "missing.json", _args(), "--resume")


def test_accuracy_figure_merges_files_first_wins_and_draws(tmp_path):
    import accuracy_figure

    a = {"summary": {"0.5": {"bayes": {"accuracy_mean": 90.0}, "tp-l2": {"accuracy_mean": 92.0}}}}
    b = {"summary": {"0.5": {"tp-l2": {"accuracy_mean": 91.0}, "l1": {"accuracy_mean": 91.5}},
                     "0.2": {"l1": {"accuracy_mean": 84.0}}}}
    merged = accuracy_figure.merged_summary([a, b])
    assert {m: v["accuracy_mean"] for m, v in merged["0.5"].items()} == {"bayes": 90.0, "tp-l2": 92.0, "l1": 91.5}
    assert merged["0.2"] == {"l1": {"accuracy_mean": 84.0}}
    for values in (v for budget in merged.values() for v in budget.values()):
        values.update(accuracy_sd=0.1, after_final_cut_mean=50.0, seeds=3)
    merged["0.5"]["pfam"] = {"accuracy_mean": 70.0, "accuracy_sd": 2.0, "after_final_cut_mean": 10.0, "seeds": 3}
    accuracy_figure.plot(merged, "test", tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 1000


def test_merge_joins_disjoint_cells_and_refuses_a_cell_twice(tmp_path):
    row = {"method": "l1", "seed": 0, "target": 0.2, "accuracy": 0.84, "accuracy_after_final_cut": 0.2,
           "macs_ratio": 0.2, "epochs": 3.0, "commit": "a"}
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"arguments": vars(_args(resume=False)), "commit": "a", "torch_threads": 1,
                                 "rows": [row]}))
    second.write_text(json.dumps({"arguments": vars(_args(resume=False, methods="l2")), "commit": "b",
                                  "torch_threads": 1,
                                  "rows": [{**row, "method": "l2", "seed": 1, "commit": "b"}]}))
    tp_compare.merge([first, second], tmp_path / "c.json")
    merged = json.loads((tmp_path / "c.json").read_text())
    assert [(r["method"], r["seed"], r["commit"]) for r in merged["rows"]] == [("l1", 0, "a"), ("l2", 1, "b")]
    assert merged["arguments"]["methods"] == "l1,l2" and merged["arguments"]["seeds"] == 2
    assert merged["row_commits"] == ["a", "b"] and set(merged["summary"]["0.2"]) == {"l1", "l2"}
    assert merged["torch_threads"] == 1  # the rows' threads, not the merging process's
    with pytest.raises(SystemExit, match="more than one file"):
        tp_compare.merge([first, first], tmp_path / "d.json")
    assert not (tmp_path / "d.json").exists()


def test_method_strings_name_criterion_allocation_and_typed_overrides():
    assert tp_compare.method_options("l1@lstm") == ("l1", {"allocation": "lstm"})
    # an optional switch (default None: its rule) takes True/False as a bool
    assert tp_compare.method_options("l2+adapt_batchnorm=False") == ("l2", {"adapt_batchnorm": False})
    assert tp_compare.method_options("bayes+interactions=True+anneal_target=final+anneal_t0=0.5") == (
        "bayes", {"interactions": True, "anneal_target": "final", "anneal_t0": 0.5})
    assert tp_compare.method_options("bayes@uniform+annealing=False") == ("bayes", {"allocation": "uniform",
                                                                                    "annealing": False})
    assert tp_compare.method_options("bayes+option.cross_layer=True") == (
        "bayes", {"criterion_options": {"cross_layer": "True"}})
    with pytest.raises(SystemExit, match="not a PruneConfig field"):
        tp_compare.method_options("bayes+colour=red")


def test_round_rows_keep_widths_after_the_cut_and_the_width_checks_choices():
    summary_round = {"round": 1, "accuracy_after_cut": 0.9, "accuracy": 0.91, "prediction_auroc": None,
                     "statistics_seconds": 1.0, "decision_seconds": 2.0, "finetune_seconds": 3.0, "macs": 7}
    cut = {"round": 1, "widths": {"conv1": [16, 7], "layers.3.shortcut.0": [32, 14]},
           "width_check": {"chosen": "uniform", "prediction": {"chosen": "cap 0.45"}}}
    row = tp_compare._round_row({**summary_round, **cut})
    assert row["widths"] == {"conv1": 7, "layers.3.shortcut.0": 14}
    assert (row["width_choice"], row["prediction_choice"]) == ("uniform", "cap 0.45")
    assert "macs" not in row and row["finetune_seconds"] == 3.0
    plain = tp_compare._round_row({**summary_round, "widths": {"conv1": [16, 8]}})
    assert plain["widths"] == {"conv1": 8} and "width_choice" not in plain  # no check ran (l2, uniform widths)


def test_bayes_v2_paired_differences_and_headline(monkeypatch):
    import bayes_v2

    monkeypatch.setattr(bayes_v2, "default_bayes", lambda: f"{bayes_v2.UNCHECKED}+anneal_target=final")
    def row(method, seed, accuracy, regime="fine-tune"):
        return {"method": method, "seed": seed, "accuracy": accuracy, "accuracy_after_final_cut": accuracy - 0.1,
                "macs_ratio": 0.5, "epochs": 6.0, "seconds": 1.0, "target": 0.5, "regime": regime}

    default, current = bayes_v2.default_bayes(), f"{bayes_v2.UNCHECKED}+anneal_target=current"
    rows = [row(default, 0, 0.90), row(default, 1, 0.92), row("l2", 0, 0.91), row("l2", 1, 0.90),
            row("tp-l1", 0, 0.80), row(current, 0, 0.93), row("bayes@uniform+anneal_target=current", 0, 0.95),
            # best on its own three seeds (92.67), second on the two it shares with bayes (89.5)
            row("taylor", 0, 0.89), row("taylor", 1, 0.90), row("taylor", 2, 0.99),
            row("l2+rounds=5", 0, 0.99), row("l2+rounds=5", 1, 0.99)]  # another set-up: not the headline's
    summary = bayes_v2.summarise(rows)["fine-tune"]["0.5"]
    l2 = summary["l2"]
    assert l2["minus_reference_mean"] == pytest.approx(-0.5)
    assert l2["minus_reference_sd"] == pytest.approx(2 ** 0.5 * 1.5)
    assert l2["reference"] == default and summary[default]["minus_reference_mean"] is None
    ablation = summary["bayes@uniform+anneal_target=current"]  # paired with the configuration it ablates
    assert ablation["reference"] == current and ablation["minus_reference_mean"] == pytest.approx(2.0)
    assert summary[current]["reference"] == default  # the configuration the ablations ablate, against the default
    head = bayes_v2.headline({"fine-tune": {"0.5": summary}}, "fine-tune", bayes_v2.MAIN + ("l2+rounds=5",))["0.5"]
    # ablations are no candidates of the main headline, nor rows with another number of cuts, and bayes
    # there is its default configuration
    assert head["bayes_method"] == default and head["best_other_name"] == "l2"
    assert head["margin_points"] == pytest.approx(91.0 - 90.5) and head["seeds"] == 2
    assert head["margin_sd"] == pytest.approx(2 ** 0.5 * 1.5)  # paired: -1 and +2 points
    text = bayes_v2.markdown({"setup": bayes_v2.SETUP, "summary": {"fine-tune": {"0.5": summary}},
                              "headline": {"0.5": head}})
    assert "| `l2` | 90.50 ± 0.71% | -0.50 ± 2.12 |" in text
    assert "margin +0.50 ± 2.12 points (paired, 2 seeds)" in text


def test_bayes_v2_distill_part_hands_distillation_to_ours_and_to_torch_pruning(monkeypatch):
    import bayes_v2

    settings = bayes_v2.settings_for("fine-tune+distill", bayes_v2.SETUP, 0.5)
    assert settings["distill"] == bayes_v2.DISTILL_ALPHA and settings["epochs"] == bayes_v2.SETUP["epochs"]
    assert "distill" not in bayes_v2.settings_for("fine-tune", bayes_v2.SETUP, 0.5)
    # bayes in the distill table is named with its annealing target, as after plain fine-tuning
    assert bayes_v2.with_target("bayes", "fine-tune+distill", "final") == "bayes+anneal_target=final"
    assert bayes_v2._reference("l2", "fine-tune+distill") == bayes_v2.DISTILL[0] == bayes_v2.default_bayes()

    import bayesprune.rounds

    seen = {}

    def fake_run(config):
        seen["distill"] = config.distill
        raise RuntimeError("stop")

    monkeypatch.setattr(bayesprune.rounds, "run_pruning", fake_run)
    small = {**settings, "model": "smallcnn-mnist5k", "data": "mnist5k", "train_subset": 64, "test_subset": 32}
    with pytest.raises(RuntimeError, match="stop"):
        tp_compare.run_ours("l2", small, 0)
    assert seen["distill"] == bayes_v2.DISTILL_ALPHA

    import bayesprune.training

    def fake_fit(model, data, config, generator, device, progress=True, loss_fn=None, **kwargs):
        seen["loss_fn"] = loss_fn
        raise RuntimeError("stop")

    monkeypatch.setattr(bayesprune.training, "fit", fake_fit)
    with pytest.raises(RuntimeError, match="stop"):
        tp_compare.run_theirs("tp-l1", {**small, "rounds": 1, "target_macs": 0.8}, 0)
    assert seen["loss_fn"] is not None  # the distillation loss, not cross-entropy
    with pytest.raises(RuntimeError, match="stop"):
        tp_compare.run_theirs("tp-l1", {**small, "rounds": 1, "target_macs": 0.8, "distill": None}, 0)
    assert seen["loss_fn"] is None


def test_bayes_v2_merge_replaces_a_remeasured_cell_only_when_asked_and_lists_it(tmp_path):
    import bayes_v2

    def result(path, accuracy, commit, seeds=(0,)):
        rows = [{"method": "l2", "seed": s, "accuracy": accuracy, "accuracy_after_final_cut": accuracy,
                 "macs_ratio": 0.5, "epochs": 6.0, "seconds": 1.0, "target": 0.5, "regime": "fine-tune",
                 "commit": commit, "torch_threads": 1} for s in seeds]
        path.write_text(json.dumps({"setup": bayes_v2.SETUP, "rows": rows}))
        return path

    old, new = result(tmp_path / "old.json", 0.90, "a", (0, 1)), result(tmp_path / "new.json", 0.92, "b")
    with pytest.raises(SystemExit, match="--replace"):
        bayes_v2.merge([old, new], tmp_path / "refused.json")
    assert not (tmp_path / "refused.json").exists()
    bayes_v2.merge([old, new], tmp_path / "merged.json", replace=True)
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert sorted((r["seed"], r["accuracy"], r["commit"]) for r in merged["rows"]) == [(0, 0.92, "b"), (1, 0.90, "a")]
    assert merged["replaced"] == [{"cell": ["fine-tune", 0.5, 0, "l2"], "commit": "a", "accuracy": 0.90}]
    assert merged["summary"]["fine-tune"]["0.5"]["l2"]["accuracy_mean"] == pytest.approx(91.0)
    bayes_v2.merge([tmp_path / "merged.json"], tmp_path / "again.json")  # a later merge keeps the record
    assert json.loads((tmp_path / "again.json").read_text())["replaced"] == merged["replaced"]


def test_bayes_v2_names_bayes_rows_with_their_width_check_and_annealing_target():
    import bayes_v2

    checked, unchecked = bayes_v2.CHECKED, bayes_v2.UNCHECKED
    old = {"method": "bayes@uniform", "regime": "fine-tune"}  # measured when current was the default
    assert bayes_v2.spelled_out(old)["method"] == "bayes@uniform+anneal_target=current"  # fixed widths: no check
    # stored rows that name no check ran before it existed
    for method, regime, spelled in (
            ("bayes+reparameterize=lsq", "post-training", f"{unchecked}+reparameterize=lsq"),
            ("bayes+anneal_target=final", "fine-tune", f"{unchecked}+anneal_target=final"),
            ("bayes+option.cross_layer=True", "fine-tune",
             f"{unchecked}+option.cross_layer=True+anneal_target=current"),
            (f"{checked}+reparameterize=lsq", "post-training", f"{checked}+reparameterize=lsq"),
            ("bayes-svi", "fine-tune", "bayes-svi"), ("l2", "fine-tune", "l2")):
        assert bayes_v2.spelled_out({"method": method, "regime": regime})["method"] == spelled
    # today's default, spelled out: obs inside the layers, widths priced after the refit (with lsq only),
    # annealing toward the checked prediction of the final cut, every cut under the rule it chose
    follow = "+option.follow_prediction=True"
    assert bayes_v2.default_bayes() == (f"{checked}+within=obs+option.compensated=True+reparameterize=lsq"
                                        f"+anneal_target=final{follow}")
    # without fine-tuning adaptive BatchNorm after each cut and the width check's held-out best are the
    # defaults (stop 42)
    adapt = "+adapt_batchnorm=True+option.check_z=0"
    assert bayes_v2.default_post("lsq") == (f"{checked}+within=obs+option.compensated=True+reparameterize=lsq"
                                            f"{follow}{adapt}")
    assert bayes_v2.default_post("mean") == f"{checked}+within=obs+reparameterize=mean{follow}{adapt}"
    assert bayes_v2.default_post("mean", today=False) == f"{checked}+within=obs+reparameterize=mean{follow}"
    # a post-training row is paired with the default of its reparameterization, unadapted rows with the old one
    assert bayes_v2._reference("obs+reparameterize=lsq", "post-training") == bayes_v2.default_post("lsq", False)
    assert bayes_v2._reference(f"obs+reparameterize=lsq{adapt}", "post-training") == bayes_v2.default_post("lsq")
    # rows that name none ran with l2 inside the layers, no compensated pricing, not following and without
    # adaptive BatchNorm, and run so (the width check's own option.adapt_batchnorm is not the run's)
    assert bayes_v2.as_measured(f"{checked}+reparameterize=lsq") == (
        f"{checked}+reparameterize=lsq+adapt_batchnorm=False+within=l2+option.compensated=False"
        "+option.follow_prediction=False+option.check_z=2")
    assert bayes_v2.as_measured(bayes_v2.default_bayes()) == (bayes_v2.default_bayes()
                                                             + "+adapt_batchnorm=False+option.check_z=2")
    assert bayes_v2.as_measured(bayes_v2.default_post("lsq")) == bayes_v2.default_post("lsq")
    option = "bayes@uniform+option.adapt_batchnorm=True"
    assert bayes_v2.as_measured(option).startswith(f"{option}+adapt_batchnorm=False")
    assert bayes_v2.as_measured("bayes-svi") == "bayes-svi+adapt_batchnorm=False"


def test_plan_calibration_one_point_budget_and_coverage_by_hand():
    import plan_calibration_scoring as scoring

    grid = {"base": 0.93, "by_fraction": {"0.7": [0.93, 0.929], "0.5": [0.925], "0.2": [0.895]}}
    # losses: 0.05 at 0.7, 0.5 at 0.5, 3.5 at 0.2 points; 1 point is 1/6 of the way from 0.5 to 0.2
    assert scoring.one_point_budget(grid) == pytest.approx(0.5 - 0.3 / 6)
    assert scoring.one_point_budget({"base": 0.9, "by_fraction": {"0.5": [0.899]}}) is None
    # base 0.93 on the test set; the draws lose 0.10-0.12 on the held-out images, disagreeing with the
    # base on 15% of them: per draw sd sqrt((0.15 - loss^2) (1/1000 + 1/10000)) ~ 0.012, so the loss
    # interval is about [0.10 - 1.4 sd, 0.12 + 1.4 sd] ~ [0.085, 0.135] (the mixture's 5% tails)
    inside = {"fraction": 0.5, "held_out_images": 1000, "test_images": 10000, "base_test": 0.93,
              "draw_accuracy": [0.80, 0.82, 0.84], "draw_loss": [0.12, 0.11, 0.10], "draw_discordance": [0.15] * 3,
              "discordance_floor": 0.0, "predicted": 0.82, "low": 0.79, "high": 0.85, "measured_test": 0.82,
              "covered": True, "measured_test_run": 0.86, "covered_run": False}
    low, high = scoring.test_interval(inside, 0.9)
    assert 0.93 - 0.14 < low < 0.93 - 0.125 and 0.93 - 0.095 < high < 0.93 - 0.08
    outside = {**inside, "measured_test": 0.70, "covered": False}
    summary = scoring.summarise([{"network": "n", "budgets": [inside, outside]}])
    assert summary["coverage_90"] == 0.5 and summary["reliability"]["0.9"] == 0.5
    assert summary["coverage_90_run"] == 0.0
    assert summary["by_network"]["n"]["mean_abs_error_points"] == pytest.approx((0 + 12) / 2)


def test_plan_calibration_scores_cells_of_an_earlier_rule_again_with_the_discordance_floor():
    import plan_calibration_scoring as scoring

    # a mild cut measured on 2,000 images the base was trained on: it changes 0.1% of them; on the
    # test set it gains 0.6 points. Paired sd without the floor sqrt(0.0015 (1/2000 + 1/1000)) ~ 0.0015
    # (interval +-0.0025: misses); with the card's error 0.034 as floor ~ 0.0071 (+-0.012: holds it)
    old = {"fraction": 0.9, "held_out_images": 2000, "test_images": 1000, "base_test": 0.966,
           "reference_accuracy": 0.966, "draw_accuracy": [0.9995] * 3, "draw_loss": [0.0] * 3,
           "draw_discordance": [0.001] * 3, "predicted": 0.966, "low": 0.9635, "high": 0.9685,
           "measured_test": 0.972, "measured_test_run": 0.966, "covered": False, "covered_run": True}
    seen = scoring.scored(old, True, 0, 0.9)
    assert seen["discordance_floor"] == pytest.approx(0.034) and seen["scored_again"]
    assert seen["covered"] and seen["covered_run"]
    assert seen["high"] - seen["low"] == pytest.approx(2 * 1.645 * (0.034 / 2000) ** 0.5, rel=0.05)
    unseen = scoring.scored(old, False, 0, 0.9)  # measured on new images: no floor
    assert unseen["discordance_floor"] == 0.0 and not unseen["covered"] and unseen["covered_run"]
    # a cell that records its floor keeps it
    assert scoring.scored({**old, "discordance_floor": 0.0}, True, 0, 0.9)["covered"] is False


def test_bayes_v2_every_row_it_would_run_is_a_valid_configuration():
    """Each name bayes_v2 stores and runs (every part's rows and --quick's, spelled out as the script
    does) parses into a PruneConfig that validates: a default named into a row must stay runnable
    (``with_target`` once read the annealing target off the end of the default's name and got ``True``)."""
    import bayes_v2
    from bayesprune.config import PruneConfig

    assert bayes_v2.with_target("bayes", "fine-tune") == f"bayes+anneal_target={PruneConfig().anneal_target}"
    named = [(regime, method) for regime, _, methods in bayes_v2.PARTS.values() for method in methods]
    named += [("fine-tune", method) for method in bayes_v2.QUICK_METHODS]
    for regime, method in named:
        if method.startswith("tp-"):
            continue
        criterion, options = tp_compare.method_options(bayes_v2.as_measured(bayes_v2.spelled(method, regime)))
        PruneConfig(criterion=criterion, **options).validate()


def test_headroom_gaps_to_the_unpruned_ceiling_by_hand():
    import headroom

    rows = [{"regime": "fine-tune", "seed": 0, "accuracy": 0.93}, {"regime": "fine-tune", "seed": 1, "accuracy": 0.91}]
    head = {"0.5": {"bayes_method": "b", "best_other_name": "o", "best_other": 91.5, "bayes": 91.5}}
    methods = {"b": {"accuracy_by_seed": {"0": 92.0, "1": 91.0, "2": 50.0}},  # seed 2 has no ceiling: left out
               "o": {"accuracy_by_seed": {"0": 92.5, "1": 90.5}}}
    summary = headroom.summarise(rows, {"headline": head, "summary": {"fine-tune": {"0.5": methods}}})
    entry = summary["fine-tune"]
    assert entry["ceiling_mean"] == pytest.approx(92.0) and "fine-tune+distill" not in summary
    budget = entry["budgets"]["0.5"]
    assert budget["bayes_minus_ceiling"]["mean"] == pytest.approx(-0.5)  # (92-93, 91-91) / 2
    assert budget["bayes_minus_ceiling"]["seeds"] == 2
    assert budget["best_other_minus_ceiling"]["mean"] == pytest.approx(-0.5)  # (92.5-93, 90.5-91)
    assert budget["best_other_minus_ceiling"]["sd"] == pytest.approx(0.0)
    assert budget["required_for_target"] == pytest.approx(91.8)  # 91.5 + 0.3 at 50%
    assert budget["required_minus_ceiling"] == pytest.approx(-0.2)
    table = headroom.markdown({"summary": summary})
    assert "| fine-tune | 92.00 ± 1.41% (2 seeds) | 0.5 | -0.50 ± 0.71 (2 seeds) | `o` -0.50 ± 0.00 (2 seeds) " \
           "| 91.80% | -0.20 |" in table


@pytest.mark.parametrize("regime", ["fine-tune", "fine-tune+distill"])
def test_headroom_cell_cuts_nothing_and_fine_tunes(monkeypatch, regime):
    import headroom

    monkeypatch.setattr(headroom, "SETUP", {**headroom.SETUP, "model": "smallcnn-mnist5k", "data": "mnist5k",
                                            "train_images": 256, "test_images": 200, "rounds": 1, "epochs": 0.25,
                                            "calibration_batches": 1})
    cell = headroom.ceiling_cell(regime, 0)
    assert cell["macs_ratio"] == pytest.approx(1.0) and len(cell["rounds"]) == 1 and 0.0 < cell["accuracy"] <= 1.0


def test_width_rule_paths_chooses_by_held_out_score_and_pairs_by_seed():
    import width_rule_paths as paths

    def cell(seed, label, accuracy, held_out):
        return {"seed": seed, "label": label, "accuracy": accuracy, "held_out_log_likelihood": held_out}

    rows = []
    for seed, (chosen, obs) in enumerate([(0.85, 0.84), (0.80, 0.83)]):
        # "cap 0.45" has the best held-out score on both seeds; "uniform" the best test accuracy on seed 1
        for label in paths.RULES:
            rows.append(cell(seed, label, 0.70, -0.9))
        rows[-len(paths.RULES) + list(paths.RULES).index("cap 0.45")] = cell(seed, "cap 0.45", chosen, -0.3)
        rows[-1] = cell(seed, "uniform", 0.82 + 0.02 * seed, -0.4)
        # the references score best on the held-out images and are never chosen: only the rules are candidates
        rows += [cell(seed, "obs", obs, 0.0), cell(seed, "default", 0.80, 0.0)]
    rows[0] = {"seed": 0, "label": "run", "unreachable": "a cap too tight"}  # skipped, as the check skips it
    rows.append(cell(2, "run", 0.99, 0.0))  # an incomplete seed is not summarised
    summary = paths.summarise(rows)
    assert summary["seeds"] == [0, 1]
    assert [summary["per_seed"][s]["chosen"] for s in ("0", "1")] == ["cap 0.45", "cap 0.45"]
    assert summary["per_seed"]["1"]["test_best"] == "uniform"
    assert summary["per_seed"]["1"]["regret_points"] == pytest.approx(4.0)
    assert summary["path_check_mean"] == pytest.approx(82.5)
    obs = summary["path_check_minus_obs"]  # +1 and -3 points
    assert (obs["mean"], obs["better"], obs["worse"]) == (pytest.approx(-1.0), 1, 1)
    assert obs["sd"] == pytest.approx(2 * 2 ** 0.5)
    assert "path_check_minus_run" not in summary  # unreachable on a seed: no pairing
