"""Issue 16 on the default network: `bayes`'s annealing target (`--anneal-target final` against
`current` and none) and its own widths against uniform ones, on the default run's set-up (the
shipped small CNN on MNIST 5k, 3 rounds of 1 epoch), 3 seeds, at 50% and 20% of the MACs, paired
against `final`. `bayes-uniform` takes the default annealing target: `final` when the committed
rows were measured (commit 5df2535), `current` since this result made it the default. The grid,
timing and summary are round_to_accuracy.py's
(:func:`round_to_accuracy.variant_grid`). Writes analysis/results/anneal_target_small_cnn.json.
Usage: python analysis/anneal_target_small_cnn.py [--quick]
"""
from __future__ import annotations

from round_to_accuracy import markdown, variant_grid  # noqa: F401 (markdown: readme_tables renders with it)

METHODS = ["bayes-anneal-final", "bayes-anneal-current", "bayes-no-annealing", "bayes-uniform"]

if __name__ == "__main__":
    variant_grid("analysis/anneal_target_small_cnn.py", METHODS, reference="bayes-anneal-final")
