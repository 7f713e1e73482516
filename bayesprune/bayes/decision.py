"""The budgeted Bayes decision: keep probabilities from posterior draws, and the kept set.

For each posterior draw ``s`` of all gates:

1. every channel's *effect* is ``(s_c / sigma_c)^2``, its gate's squared signal-to-noise ratio
   (``sigma_c`` = posterior sd of the gate). For a Gaussian posterior this is twice the
   quadratic (Laplace) estimate of the log-likelihood, in nats, lost by setting ``s_c = 0``, and
   its inverse is the ``alpha = sigma^2 / mu^2`` that Louizos et al. 2017, sec. 4, threshold to
   prune. A channel the data does not need keeps its prior-sized spread and scores about 1; a
   needed one scores hundreds. Its *cost* is the marginal MACs (or params) of one channel of its
   group in the current network (the cost model's gradient at full width, fixed across draws so
   that a draw's ranking does not depend on the budget);
2. channels are removed in increasing ``effect / cost`` order (at most ``max_fraction`` of any
   group, never all of it) until the cost model says the network is within budget.

A channel's **keep probability** is the fraction of draws in which it survives. Because every
draw's removal order is fixed, a larger budget keeps a superset in every draw, so keep
probabilities are monotone in the budget.

The **decision** maximises the expected utility ``U(K) = sum_{c in K} P(c kept)``, the expected
number of channels on which the kept set K agrees with the posterior's own budgeted choice,
subject to ``cost(K) <= budget``: a knapsack, solved greedily by removing channels in increasing
``P(c kept) / cost_c`` order (ties broken by posterior mean effect per cost) until the budget is met.

With ``allocation="uniform"`` the per-layer counts are fixed first (every group loses the same
fraction, the smallest that meets the budget, as for the point-estimate criteria) and each draw,
and the decision, choose *which* channels go within each group by the same rules; this avoids
the global ranking's tendency to empty the most expensive layers, where single-channel effects
stop adding up.

A channel is **uncertain** when the 90% HDI of its ``effect / cost`` contains the cut level
(the median over draws of the effect-per-cost at which that draw stopped removing).
"""
from __future__ import annotations

import numpy as np

from ..decision.selector import BudgetedSelector


def keep_probabilities(effect_draws: np.ndarray, selector: BudgetedSelector) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-draw budgeted decisions; returns ``(kept per draw, keep probability, median cut level)``."""
    ratio = effect_draws / selector.channel_cost
    kept, cuts = zip(*(selector.select(r) for r in ratio))
    kept = np.stack(kept)
    return kept, kept.mean(0), float(np.median(cuts))


def bayes_decision(keep_probability: np.ndarray, mean_effect: np.ndarray, selector: BudgetedSelector,
                   keep_probability_final: np.ndarray | None = None) -> np.ndarray:
    """The kept set maximising expected agreement with the posterior decisions under the budget.

    With ``keep_probability_final`` (the probability of surviving the run's final budget), that
    is the utility and this round's keep probability breaks ties, then the mean effect.
    """
    cost = selector.channel_cost
    if keep_probability_final is None:
        return selector.select(keep_probability / cost, tie_break=[mean_effect / cost])[0]
    return selector.select(keep_probability_final / cost,
                           tie_break=[mean_effect / cost, keep_probability / cost])[0]
