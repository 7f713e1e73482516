"""The run report (HTML, figures, summary.md) and its diagnostics."""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bayesprune.bayes.posterior import ChannelPosterior
from bayesprune.cli import main
from bayesprune.report import diagnose

QUICK = ["--train-subset", "512", "--test-subset", "256", "--epochs", "0.2", "--quiet", "--device", "cpu",
         "--rounds", "2"]
VOID = {"meta", "img", "br", "hr", "link", "input"}
CHROMIUM = next((shutil.which(n) for n in ("chromium-headless-shell", "chromium", "chromium-browser")
                 if shutil.which(n)), None)


class StrictParser(HTMLParser):
    """Collects image sources and fails on unbalanced or misnested tags."""

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def parse(path: Path) -> StrictParser:
    parser = StrictParser()
    parser.feed(path.read_text())
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    return parser


@pytest.fixture(scope="module")
def bayes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "bayes"
    assert main(["run", "--criterion", "bayes-svi", "--svi-steps", "10", "--posterior-draws", "30",
                 "--out", str(out), *QUICK]) == 0
    return out


def test_run_writes_report_whose_every_link_exists(bayes_run):
    report = bayes_run / "report"
    page = parse(report / "index.html")
    assert len(page.images) >= 8 and len(set(page.images)) == len(page.images)
    for src in page.images:
        assert not src.startswith(("/", "http")) and (report / src).stat().st_size > 1000
    markdown = (report / "summary.md").read_text()
    for src in re.findall(r"\]\(([^)]+)\)", markdown):
        assert (report / src).is_file()
    text = (report / "index.html").read_text()
    for section in ("Rounds", "Keep probabilities", "ELBO", "Convergence diagnostics", "Uncertain channels"):
        assert section in text
    assert {f"keep_forest_round{r}.png" for r in (1, 2)} <= set(page.images)
    # two SVI fits by default: R-hat is a number, and the report says what the chains are
    assert "2 independent fit(s) from different seeds" in text and "R-hat needs" not in text
    assert re.search(r"<td>tau</td><td></td>(<td>[^<]*</td>){4}<td>\d\.\d{3}</td>", text)
    assert not list(report.glob("*.tmp")) and not list(report.glob(".*"))


def test_report_command_rewrites_the_same_report(bayes_run, capsys):
    before = (bayes_run / "report" / "summary.md").read_text()
    (bayes_run / "report" / "summary.md").unlink()
    assert main(["report", str(bayes_run)]) == 0
    assert "index.html" in capsys.readouterr().out
    assert (bayes_run / "report" / "summary.md").read_text() == before


def test_point_criterion_report_has_no_posterior_sections(tmp_path):
    out = tmp_path / "l1"
    assert main(["run", "--criterion", "l1", "--out", str(out), *QUICK]) == 0
    page = parse(out / "report" / "index.html")
    assert set(page.images) == {"accuracy_vs_macs.png", "widths.png"}
    text = (out / "report" / "index.html").read_text()
    assert "Rounds" in text and "Keep probabilities" not in text and "R-hat" not in text


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: p.write_text("x")])
def test_report_of_something_that_is_not_a_run(tmp_path, capsys, make):
    target = tmp_path / "not-a-run"
    make(target)
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a bayesprune run directory" in err
    assert not target.is_dir() or not any(target.iterdir())  # nothing written


@pytest.mark.skipif(CHROMIUM is None, reason="no headless chromium (apt-get install chromium-headless-shell)")
def test_browser_loads_the_report_without_broken_images(bayes_run, tmp_path):
    report = bayes_run / "report"
    probe = ('<script>window.addEventListener("load",()=>{const b=[...document.images].filter('
             'i=>!i.complete||i.naturalWidth===0).map(i=>i.getAttribute("src"));'
             'document.body.setAttribute("data-images",document.images.length);'
             'document.body.setAttribute("data-broken",b.join(","));});</script></body>')
    check = report / "browser-check.html"  # beside the figures so the relative links resolve
    check.write_text((report / "index.html").read_text().replace("</body>", probe))
    try:
        args = [CHROMIUM, "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                "--virtual-time-budget=5000"]
        dom = subprocess.run(args + ["--dump-dom", check.as_uri()], capture_output=True, text=True,
                             timeout=120).stdout
        shot = tmp_path / "shot.png"
        subprocess.run(args + [f"--screenshot={shot}", "--window-size=1200,3000", (report / "index.html").as_uri()],
                       capture_output=True, timeout=120)
    finally:
        check.unlink()
    images = re.search(r'data-images="(\d+)"', dom)
    assert images and int(images.group(1)) == len(parse(report / "index.html").images)
    assert re.search(r'data-broken=""', dom), dom[-500:]
    assert shot.stat().st_size > 10_000


def _posterior(gate_draws, kept_draws, layers, chains):
    channels = gate_draws.shape[1]
    return ChannelPosterior(layers, np.arange(channels), gate_draws, {}, kept_draws.mean(0), kept_draws,
                            kept_draws.mean(0) > 0.5, np.zeros(channels, bool), [[] for _ in range(chains)],
                            "test", None, chains)


def test_layer_quantities_by_hand():
    gates = np.array([[3.0, 4.0, 1.0], [0.0, 2.0, 2.0]])  # 2 draws; layers a = (0, 1), b = (2,)
    kept = np.array([[1, 1, 0], [0, 1, 1]], bool)
    quantities = _posterior(gates, kept, ["a", "a", "b"], 1).layer_quantities()
    np.testing.assert_allclose(quantities["layer_rms_gate"], [[np.sqrt(12.5), 1.0], [np.sqrt(2.0), 2.0]])
    np.testing.assert_array_equal(quantities["layer_surviving"], [[2, 0], [1, 1]])


def test_keep_probability_interval_is_symmetric_and_covers():
    kept = np.zeros((40, 3), bool)
    kept[:20, 0] = True  # 20 of 40: interval symmetric about 1/2
    kept[:, 1] = True
    low, high = _posterior(np.ones((40, 3)), kept, ["a"] * 3, 1).keep_probability_interval()
    assert low[0] + high[0] == pytest.approx(1.0) and low[0] < 0.5 < high[0]
    assert low[2] < 1e-3 and high[2] < 0.1 and low[1] > 0.9 and high[1] > 0.999
    # frequentist coverage of the 90% Jeffreys interval near its nominal level (Brown et al. 2001)
    rng = np.random.default_rng(0)
    draws = rng.random((200, 2000)) < 0.3
    low, high = _posterior(np.ones((200, 2000)), draws, ["a"] * 2000, 1).keep_probability_interval()
    assert 0.86 < np.mean((low <= 0.3) & (0.3 <= high)) < 0.94


def test_diagnostics_tell_agreeing_from_disagreeing_chains():
    rng = np.random.default_rng(1)
    same = rng.normal(1.0, 0.1, (2 * 100, 4))
    shifted = same.copy()
    shifted[100:, :2] += 1.0  # the second chain's layer "a" sits elsewhere
    kept = np.ones((200, 4), bool)
    kept[100:, 0] = False  # chains disagree completely on channel 0 of layer a
    layers = ["a", "a", "b", "b"]
    agree = diagnose(_posterior(same, np.ones((200, 4), bool), layers, 2).inference_data())
    differ = diagnose(_posterior(shifted, kept, layers, 2).inference_data())
    rhat = {(r["variable"], r["index"]): r["r_hat"] for r in differ.rows}
    assert agree.max_r_hat < 1.05 and rhat[("layer_rms_gate", "a")] > 1.5 and rhat[("layer_rms_gate", "b")] < 1.05
    assert "layer_surviving[b]" in differ.constant  # every draw keeps both: nothing to diagnose
    assert [(r["layer"], r["max_difference"], r["mean_difference"]) for r in differ.fit_disagreement] == \
        [("a", 1.0, 0.5), ("b", 0.0, 0.0)]
    one = diagnose(_posterior(same[:100], np.ones((100, 4), bool), layers, 1).inference_data())
    assert one.max_r_hat is None and one.fit_disagreement == [] and one.rows[0]["ess_bulk"] > 50


def test_metrics_record_layer_widths(bayes_run):
    rounds = [json.loads(line) for line in (bayes_run / "metrics.jsonl").read_text().splitlines()][1:]
    first, second = rounds[0]["widths"], rounds[1]["widths"]
    assert all(after <= before for before, after in first.values())
    assert {name: after for name, (_, after) in first.items()} == {name: before for name, (before, _) in second.items()}


def test_default_bayes_report_shows_whether_the_posterior_agrees_with_itself(tmp_path):
    out = tmp_path / "default"
    assert main(["run", "--rounds", "2", "--posterior-draws", "30", "--out", str(out), *QUICK]) == 0
    text = (out / "report" / "index.html").read_text()
    for section in ("Does the posterior agree with itself?", "Convergence diagnostics", "Keep probabilities"):
        assert section in text
    assert "ELBO" not in text  # nothing is optimised: no ELBO to show
    assert re.search(r"<td>1</td><td>\d\.\d{3}</td>", text)  # round 1's R-hat is a number
    summary = (out / "report" / "summary.md").read_text()
    assert "## Does the posterior agree with itself?" in summary
    # the held-out width check: every round lists its candidates, the posterior's own first, one chosen
    assert "## Were the posterior's widths kept?" in summary
    rounds = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("event") == "round"]
    assert len(rounds) == 2
    for record in rounds:
        check = record["width_check"]
        assert check["candidates"][0] == "run" and check["candidates"][-1] == "uniform"
        assert check["chosen"] in check["candidates"]
        assert re.search(rf"<td>{record['round']}</td><td>{re.escape(check['chosen'])}</td>"
                         r"(<td>[^<]*</td>){2}<td>yes[^<]*</td>", text)
    # round 1 of 2 predicts the final cut under a rule the report names; the last round predicts nothing
    rule = rounds[0]["width_check"]["prediction_rule"]
    assert rule in ("run", rounds[0]["width_check"]["chosen"]) and "prediction_rule" not in rounds[1]["width_check"]
    assert re.search(rf"<td>1</td><td>{re.escape(rule)}</td>(<td>[^<]*</td>){{3}}<td>yes</td>", text)


def test_width_check_rows_say_when_the_cut_followed_the_prediction_over_its_own_best():
    from bayesprune.report.build import _width_check_rows

    check = {"candidates": ["run", "cap 0.6", "uniform"], "held_out_accuracy": [0.9, 0.8, 0.85],
             "held_out_log_likelihood": [-0.3, -0.5, -0.4], "chosen": "run", "prediction_rule": "uniform"}
    rows = _width_check_rows({"round": 1, "width_check": check})
    assert [r[4] for r in rows] == ["yes", "", ""] and [r[5] for r in rows] == ["", "", "yes"]
    followed = {**check, "chosen": "uniform", "chosen_for_cut": "run"}
    rows = _width_check_rows({"round": 1, "width_check": followed})
    assert [r[4] for r in rows] == ["this cut's own best", "", "yes (the prediction's rule)"]
