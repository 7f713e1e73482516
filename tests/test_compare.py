"""bayesprune.compare without running networks: method names, cells, the table, resuming rules."""
import json

import pytest

from bayesprune.compare import VARIANTS, cell_key, markdown_table, method_settings, run_grid
from bayesprune.config import PruneConfig
from bayesprune.errors import ConfigError, RunDirError


def test_methods_are_criteria_or_variants_and_every_variant_is_a_valid_config():
    assert method_settings("l2") == {"criterion": "l2"}
    assert method_settings("bayes-uniform") == {"criterion": "bayes", "allocation": "uniform"}
    with pytest.raises(ConfigError, match="unknown method 'l3'"):
        method_settings("l3")
    for name, settings in VARIANTS.items():
        PruneConfig(**settings).budget()  # every variant's options are real and consistent
    assert cell_key("l2", 0.5, 2) == "l2__macs0.5__seed2"


def test_table_is_mean_and_sd_over_seeds_with_the_best_in_bold():
    rows = [{"method": "a", "target": 0.5, "accuracy": x} for x in (0.90, 0.92)] + \
           [{"method": "b", "target": 0.5, "accuracy": 0.95}, {"method": "b", "target": 0.2, "accuracy": 0.80}]
    table = markdown_table(rows, ["a", "b"], [0.5, 0.2])
    assert "| `a` | 91.00 ± 1.41% | - |" in table  # sd of (90, 92)
    assert "| `b` | **95.00 ± 0.00%** | **80.00 ± 0.00%** |" in table


def _fake_runner(calls):
    def runner(config):
        calls.append((config.criterion, config.target_macs, config.seed))
        return {"final": {"accuracy": 0.5 + config.seed / 10, "macs": 1, "params": 2}, "final_ratio": {"macs": 0.5},
                "rounds": [{"seconds": 1.0, "accuracy_after_cut": 0.3}, {"seconds": 2.0, "accuracy_after_cut": 0.4}]}
    return runner


def test_a_grid_resumes_its_finished_cells_and_refuses_other_settings(tmp_path):
    base, calls = PruneConfig(epochs=0.0), []
    rows = run_grid(base, ["l1", "l2"], [0.5], 2, tmp_path, progress=False, runner=_fake_runner(calls))
    assert len(calls) == 4 and [r["accuracy"] for r in rows] == [0.5, 0.6, 0.5, 0.6]
    assert rows[0]["seconds"] == 3.0 and rows[0]["accuracy_after_final_cut"] == 0.4
    (tmp_path / "cells" / f"{cell_key('l2', 0.5, 1)}.json").unlink()  # as if killed in that cell
    run_grid(base, ["l1", "l2"], [0.5], 2, tmp_path, progress=False, runner=_fake_runner(calls))
    assert calls[4:] == [("l2", 0.5, 1)]  # only the missing cell ran again
    assert (tmp_path / "results.csv").read_text().count("\n") == 5 and (tmp_path / "pareto.png").is_file()
    assert json.loads((tmp_path / "compare.json").read_text())["methods"] == ["l1", "l2"]
    with pytest.raises(RunDirError, match="other settings"):
        run_grid(PruneConfig(epochs=1.0), ["l1"], [0.5], 1, tmp_path, progress=False, runner=_fake_runner(calls))
