"""Per-example gradients of the log-likelihood with respect to the channel gates, in one
backward pass per batch, and their diagonal empirical Fisher information.

With the network in eval mode (BatchNorm on running statistics) the examples of a batch do not
interact, so the gradient of the *summed* loss with respect to a gated output ``y[i, j, ...]`` is
example i's own gradient. A gate ``s_c`` multiplies its channel's outputs, so example i's gradient
with respect to it, at ``s = 1`` (the trained network), is

    g_ic = sum over the layers L that the gate scales, and positions p, of y_L[i, j, p] dl_i/dy_L[i, j, p]

(``j`` the layer's channels that gate c drives; a coupled group's layers share one gate, so their
terms add before squaring). The diagonal empirical Fisher is ``F_c = mean_i g_ic^2``; for N
training examples, ``N F_c`` is the precision of the log-likelihood's quadratic (Laplace)
approximation in ``s_c`` (MacKay 1992, "A practical Bayesian framework for backpropagation
networks", sec. 4; the Fisher as a Hessian approximation: Martens 2020, "New insights and
perspectives on the natural gradient method", sec. 9). The same ``g_ic`` summed over a
minibatch and squared is Molchanov et al. 2019's Taylor criterion.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from .distributed import SINGLE, Collective
from .faults import crash_point
from .gates import ChannelGates


@dataclass
class GateFisher:
    """Mean squared per-example gate gradient over the calibration examples, also split into
    two halves (alternate examples) so that the stability of anything built on it can be shown."""

    fisher: np.ndarray  # (channels,)
    halves: tuple[np.ndarray, np.ndarray]
    examples: int
    gradients: np.ndarray  # (examples, channels) per-example gate gradients; halves = alternate rows

    def block(self, channels: np.ndarray, half: int | None = None) -> np.ndarray:
        """Empirical Fisher matrix ``mean_i g_i g_i^T`` of ``channels`` (e.g. one layer's gates),
        over all examples or one half (0: even rows, 1: odd rows)."""
        rows = self.gradients if half is None else self.gradients[half::2]
        g = rows[:, channels]
        return g.T @ g / max(1, len(rows))


def per_example_gate_gradients(model: nn.Module, gates: ChannelGates, xb: torch.Tensor,
                               yb: torch.Tensor) -> torch.Tensor:
    """``(batch, channels)`` gradients of each example's log-likelihood w.r.t. every gate at 1.

    Every example gets its own gates (a ``(batch, channels)`` tensor of ones), so one backward
    pass of the summed loss gives all of them; shared gates of coupled layers add up by autograd.
    """
    values = torch.ones(len(yb), gates.num_channels, device=xb.device, requires_grad=True)
    gates.values = values
    try:
        with gates:
            loss = nn.functional.cross_entropy(model(xb), yb, reduction="sum")
        (grad,) = torch.autograd.grad(loss, values)
    finally:
        gates.values = None
    return -grad.double().cpu()  # d log p = -d loss


def gate_fisher(model: nn.Module, gates: ChannelGates, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                collective: Collective = SINGLE) -> GateFisher:
    """Diagonal empirical Fisher of every gate over ``batches`` (model in eval mode meanwhile).

    With a ``collective`` of several processes, each computes its shard of every batch and the
    rows are gathered back in order: every process gets the one-process result."""
    was_training = model.training
    model.eval()
    rows = []
    try:
        for xb, yb in batches:
            crash_point("fisher-batch")
            part = collective.shard(len(yb))
            own = (per_example_gate_gradients(model, gates, xb[part], yb[part]) if part.stop > part.start
                   else torch.zeros(0, gates.num_channels, dtype=torch.float64))
            rows.append(collective.gather_rows(own))
    finally:
        model.train(was_training)
    if not rows:
        raise ValueError("the gate Fisher needs at least one calibration batch")
    gradients = torch.cat(rows).numpy()
    squares = gradients ** 2
    return GateFisher(squares.mean(0), (squares[0::2].mean(0), squares[1::2].mean(0)), len(gradients), gradients)


def cut_priority(gate_draws: np.ndarray, orders: list[np.ndarray], blocks: list[np.ndarray], examples: int,
                 channel_cost: np.ndarray, shares: list[np.ndarray] | None = None) -> np.ndarray:
    """Per draw of the gates ``(draws, channels)``, the loss that removing each channel adds to its
    layer's cut, per unit of cost, made non-decreasing along the layer's removal order.

    ``orders[l]``: layer l's channels in the order it gives them up; ``blocks[l]``: its Fisher
    matrix in that order (a diagonal one ignores interactions). Removing the first k channels
    ``S_k`` costs ``N s_S^T F_SS s_S / 2`` nats (the quadratic log-likelihood of the gates, moved
    from ``s`` to 0); the k-th channel adds ``N (s_k^2 F_kk + 2 s_k sum_{j<k} F_kj s_j) / 2``.
    Ranking every channel of every layer by this priority removes, at each step, the channel
    whose removal costs the least log-likelihood per MAC (or param) it saves.

    ``shares[l][k]``: the share of a k-channel cut of layer l that survives the run's compensation
    (:func:`bayesprune.surgery.residual.compensated_share`); the cut's loss is scaled by it, so that
    channels the refit can rebuild from the kept ones cost what is left after the refit.
    """
    out = np.empty_like(gate_draws, dtype=np.float64)
    for index, (order, block) in enumerate(zip(orders, blocks)):
        s = gate_draws[:, order]
        added = 0.5 * examples * (s ** 2 * np.diag(block) + 2 * s * (s @ np.tril(block, -1).T))
        if shares is not None:  # the loss of each prefix, scaled by what the refit leaves of it
            added = np.diff(np.cumsum(added, axis=1) * shares[index][1:len(order) + 1], axis=1, prepend=0.0)
        out[:, order] = np.maximum.accumulate(added / channel_cost[order], axis=1)
    return out


def cross_layer_priority(gate_draws: np.ndarray, orders: list[np.ndarray], precision: np.ndarray,
                         channel_cost: np.ndarray) -> np.ndarray:
    """Per draw of the gates ``(draws, channels)``, the step at which a greedy cut under the
    *whole* quadratic model removes each channel.

    The loss of removing a set S of channels of any layers is ``s_S^T P_SS s_S / 2`` with ``P``
    the empirical Fisher of all gates times N (``precision``): unlike :func:`cut_priority`, channels
    of different layers interact, so two cuts that hurt the same examples cost more together than
    apart (the Hessian's off-diagonal blocks, Hassibi & Stork 1993's OBS, with the Fisher in place
    of the Hessian as in Theis et al. 2018). Each step removes, among every layer's next channel in
    its ``orders``, the one whose removal adds the least, ``s_c^2 P_cc / 2 + s_c (P s_S)_c``, per
    unit of cost. The steps rise along each layer's order, and a budget cuts a prefix of them.
    Cost: one pass over the channels per draw, each step ``O(draws x channels)``.
    """
    draws, channels = gate_draws.shape
    layers = len(orders)
    padded = np.full((layers, max(len(o) for o in orders) + 1), -1)  # -1: the layer has nothing left
    for index, order in enumerate(orders):
        padded[index, :len(order)] = order
    position = np.zeros((draws, layers), dtype=np.int64)  # each draw's next channel in every layer
    pull = np.zeros((draws, channels))  # (P s_S) per draw
    step_of = np.empty((draws, channels))
    rows, diagonal, layer_index = np.arange(draws), np.diag(precision), np.arange(layers)[None, :]
    for step in range(channels):
        candidate = padded[layer_index, position]
        valid = candidate >= 0
        c = np.where(valid, candidate, 0)
        s = np.take_along_axis(gate_draws, c, 1)
        added = np.where(valid, (0.5 * s ** 2 * diagonal[c] + s * np.take_along_axis(pull, c, 1)) / channel_cost[c],
                         np.inf)
        layer = added.argmin(1)
        chosen = c[rows, layer]
        step_of[rows, chosen] = step
        pull += precision[chosen] * gate_draws[rows, chosen][:, None]
        position[rows, layer] += 1
    return step_of


def order_ranks(orders: list[np.ndarray], size: int) -> np.ndarray:
    """Each channel's position in its layer's removal order (``orders`` as in :func:`cut_priority`)."""
    rank = np.empty(size, dtype=np.int64)
    for order in orders:
        rank[order] = np.arange(len(order))
    return rank
