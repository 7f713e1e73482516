"""The README's extension examples run as written (issue 17): a custom criterion and a custom prior,
passed to ``run_pruning`` as objects, without editing the package."""
import json
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _section_code(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"## {title}"):]
    section = section[:section.index("\n## ", 5)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, f"no python block in the README section {title!r}"
    return "\n".join(blocks)


def test_extension_examples_run_with_objects_not_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_section_code("Extending"), "README.md (Extending)", "exec"), namespace)
    point, bayes = namespace["point"], namespace["bayes"]
    assert point["criterion"] == "mean-abs" and point["final_ratio"]["macs"] <= 0.5
    assert bayes["criterion"] == "bayes" and bayes["final_ratio"]["macs"] <= 0.5
    recorded = json.loads((tmp_path / "runs" / "mean-abs" / "config.json").read_text())["config"]
    assert recorded["criterion"] == "mean-abs" and recorded["allocation"] == "uniform"
    # the custom prior is the one the posterior used: its grid weights are the half-normal's
    prior = namespace["HalfNormalLocal"]()
    criterion = namespace["bp"].BayesLaplace(prior=prior)
    lam, weight = criterion.grid.lam, criterion.grid.lam_log_weight
    expected = -0.5 * lam ** 2 + np.log(lam)  # log density + log(lambda): the log-spaced grid's Jacobian
    relevant = expected - expected.max() > -50  # where the weights are not negligible
    assert np.allclose((weight - weight.max())[relevant], (expected - expected.max())[relevant], atol=1e-9)
