"""Options declared once, in a criterion's or prior's constructor (issue 17): bound, converted,
recorded in config.json and used."""
import json

import pytest

from bayesprune.cli import main
from bayesprune.config import PruneConfig
from bayesprune.criteria import make_criterion
from bayesprune.criteria.thinet import ThiNet
from bayesprune.errors import ConfigError
from bayesprune.options import bind_options, declared_options, parse_assignments


def test_declared_options_are_the_plain_constructor_defaults():
    assert declared_options(ThiNet) == {"samples": 4096, "seed": 0}
    assert declared_options(ThiNet, reserved=("seed",)) == {"samples": 4096}


def test_values_take_the_type_of_their_default():
    assert bind_options(ThiNet, {"samples": "2048"}, "--criterion-option") == {"samples": 2048}
    from bayesprune.criteria.bayes_laplace import BayesLaplace

    assert bind_options(BayesLaplace, {"fold_means": "yes"}, "--criterion-option",
                        reserved=BayesLaplace.set_by_flags) == {"fold_means": True}
    with pytest.raises(ConfigError, match="must be true or false"):
        bind_options(BayesLaplace, {"fold_means": "maybe"}, "--criterion-option")
    with pytest.raises(ConfigError, match="thinet has no such option; it accepts samples=4096"):
        bind_options(ThiNet, {"sample": "1"}, "--criterion-option", reserved=("seed",))
    assert parse_assignments(["a=1", "slab-scale = 2"], "--prior-option") == {"a": "1", "slab_scale": "2"}


def test_config_options_reach_the_objects():
    config = PruneConfig(criterion="thinet", seed=2, criterion_options={"samples": 512})
    thinet = make_criterion("thinet", config=config)
    assert thinet.samples == 512
    bayes = make_criterion("bayes", config=PruneConfig(prior="regularized-horseshoe", tau0=0.3,
                                                       prior_options={"slab_scale": "1.5", "slab_df": 6}))
    assert (bayes.prior.tau0, bayes.prior.slab_scale, bayes.prior.slab_df) == (0.3, 1.5, 6.0)
    folding = make_criterion("bayes", config=PruneConfig(criterion_options={"fold_means": "true"}))
    # --within (obs, the default) gets none of bayes's options
    assert folding.fold_means is True and folding.within.name == "obs" and folding.within.ridge == 1e-3


def test_prior_option_from_the_command_line_is_used_and_recorded(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--prior", "regularized-horseshoe", "--prior-option", "slab_scale=1", "--rounds", "1",
                 "--epochs", "0", "--train-subset", "300", "--test-subset", "100", "--no-report", "--quiet",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["prior_options"] == {"slab_scale": "1"} and config["criterion_options"] == {}
