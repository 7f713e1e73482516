"""Issue 16 on the default network: `bayes`'s annealing target (`--anneal-target current`, the
default when this was last run, against `final`, the default since, `last` and none), its own
widths against uniform ones, and its cut priced under every layer's Fisher together
(`bayes-cross-layer`, which anneals toward the default target, `final`; also with `current`, paired like for
like with the reference, and with `last`), on the default run's set-up (the shipped small CNN on
MNIST 5k, 3 rounds of 1 epoch), 3 seeds, at 50% and 20% of the MACs, paired against `current`.
The grid, timing and summary are round_to_accuracy.py's (:func:`round_to_accuracy.variant_grid`).
Writes analysis/results/anneal_target_small_cnn.json.
(The first version of this script, commit 5df2535, measured against `final`, the default then.)
Usage: python analysis/anneal_target_small_cnn.py [--quick]
"""
from __future__ import annotations

from round_to_accuracy import markdown, variant_grid  # noqa: F401 (markdown: readme_tables renders with it)

METHODS = ["bayes-anneal-current", "bayes-anneal-final", "bayes-anneal-last", "bayes-no-annealing", "bayes-uniform",
           "bayes-cross-layer", "bayes-cross-layer-current", "bayes-cross-layer-last"]

if __name__ == "__main__":
    variant_grid("analysis/anneal_target_small_cnn.py", METHODS, reference="bayes-anneal-current")
