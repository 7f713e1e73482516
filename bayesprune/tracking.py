"""Which channels will the final round prune? Predictions per round, scored when the run ends.

Round r's posterior draws are pushed through the rest of the budget schedule: in each draw the
channels are removed in that draw's fixed order (effect per cost, see
:mod:`bayesprune.bayes.decision`) until the *final* budget is met. Because a draw's order does not
depend on the budget, cutting to the intermediate targets first and then to the final one removes
exactly the same set as cutting to the final target at once, so the predicted probability that
channel c is pruned by the end is ``1 - P(c kept at the final budget)`` over the draws.

:class:`ChannelTracker` remembers every surviving channel's identity in the *base* network (group
name, original index), so that each round's predictions can be compared with the final network.
``prediction_auroc`` (scikit-learn ``roc_auc_score``; undefined, reported as None, when every
channel has the same outcome) and ``prediction_brier`` (``brier_score_loss``) measure them.
"""
from __future__ import annotations

import numpy as np

from .groups import ChannelGraph


class ChannelTracker:
    """Original indices of the surviving channels of every group, updated after each cut."""

    def __init__(self, graph: ChannelGraph):
        self.alive = {g.name: np.arange(g.size) for g in graph.groups}

    def ids(self, graph: ChannelGraph) -> list[tuple[str, int]]:
        """``(group, original index)`` of every channel of ``graph``, in the gates' channel order."""
        out = []
        for group in graph.groups:
            alive = self.alive[group.name]
            if len(alive) != group.size:
                raise RuntimeError(f"tracker has {len(alive)} channels for {group.name}, the network {group.size}")
            out += [(group.name, int(i)) for i in alive]
        return out

    def remove(self, removal: dict[str, list[int]]) -> None:
        for name, idxs in removal.items():
            self.alive[name] = np.delete(self.alive[name], sorted(int(i) for i in idxs))

    def survivors(self) -> set[tuple[str, int]]:
        return {(name, int(i)) for name, alive in self.alive.items() for i in alive}


def score_predictions(ids: list[tuple[str, int]], prune_probability: np.ndarray,
                      survivors: set[tuple[str, int]]) -> dict:
    """AUROC and Brier score of predicted pruning probabilities against the final outcome."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    pruned = np.array([cid not in survivors for cid in ids], dtype=int)
    probability = np.clip(np.asarray(prune_probability, dtype=float), 0.0, 1.0)
    auroc = float(roc_auc_score(pruned, probability)) if 0 < pruned.sum() < len(pruned) else None
    return {"prediction_auroc": auroc, "prediction_brier": float(brier_score_loss(pruned, probability)),
            "channels": len(ids), "pruned_by_final": int(pruned.sum())}
