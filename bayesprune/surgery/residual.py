"""What least-squares compensation leaves of a cut: per group and per number of channels removed
in a given order, the share of the consumers' output error that the ``lsq`` refit
(:mod:`bayesprune.surgery.compensate`) cannot repair.

Removing input channels S of a consumer with weights W (columns: ``weight.flatten(1)``'s) changes
its output by ``W_S x_S``; its mean squared size over the calibration rows is
``tr(W_S G_SS W_S^T) / n`` with ``G = [X 1]^T [X 1]`` the rows' Gram matrix. The least-squares
refit on the kept columns K and an intercept predicts ``x_S`` from them, and leaves the residual
of that regression: ``tr(W_S (G_SS - G_SK G_KK^-1 G_KS) W_S^T) / n`` (the Schur complement;
Luo et al. 2017's ThiNet reconstruction error, with all kept weights refitted). Its inverse form,
``(G_SS - G_SK G_KK^-1 G_KS) = ((G^-1)_SS)^-1``, needs one inversion of ``G`` per consumer for
every S. The share is the refit's error over the zeroed cut's, summed over a group's consumers:
1 when the removed channels are unpredictable from the kept ones, 0 when they are linear
combinations of them (a duplicated channel costs nothing once its twin absorbs its weights).

Simplification (:func:`compensated_share`, for any order): computed at ``points`` prefix lengths
and interpolated linearly between them; the ridge is that of the refit (relative to the Gram
matrix's mean diagonal). For the order ``obs`` gives, its greedy pass already holds the refit's
error of every prefix (Optimal Brain Surgeon's updates are exact sequential least squares), and
:func:`shares_of_prefixes` turns those into exact shares at every k with :func:`zeroed_matrix`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from torch import nn

from ..groups import ChannelGraph
from .compensate import RIDGE, InputStatistics, consumers_of, refittable

POINTS = 16


class RefitProblem(NamedTuple):
    """One consumer's least-squares refit: what :func:`refit_problem` gives."""

    weight: np.ndarray  # (out, columns): columns = input channels x kernel
    precision: np.ndarray  # the inverse of the ridged Gram matrix (columns + 1 with the intercept)
    gram: np.ndarray  # G = [X 1]^T [X 1], unridged
    kernel: int  # columns per input channel


def compensated_share(graph: ChannelGraph, orders: dict[str, np.ndarray],
                      statistics: dict[nn.Module, InputStatistics], ridge: float = RIDGE,
                      points: int = POINTS) -> dict[str, np.ndarray]:
    """Per group name of ``orders`` (its channels, as group-local indices, in the order it gives them
    up), the share ``r[k]`` for ``k = 0..len(order)`` channels removed (``r[0] = 1``)."""
    solved: dict[nn.Module, tuple] = {}  # per consumer, its refit problem and zeroed_matrix: once
    shares = {}
    for name, order in orders.items():
        size = len(order)
        grid = np.unique(np.round(np.linspace(1, size, min(points, size))).astype(int))
        zeroed, refit = np.zeros(len(grid)), np.zeros(len(grid))
        for i, k in enumerate(grid):
            for consumer in consumers_of(graph, {name: [int(c) for c in order[:k]]}):
                if not refittable(consumer.module) or consumer.module not in statistics:
                    continue  # compensation does not refit it
                if consumer.module not in solved:
                    problem = refit_problem(consumer.module, statistics[consumer.module], ridge)
                    blocks = np.arange(problem.weight.shape[1]).reshape(-1, problem.kernel)
                    solved[consumer.module] = problem, zeroed_matrix(problem.weight, problem.gram, blocks)
                problem, channel_zeroed = solved[consumer.module]
                channels = np.asarray(consumer.removed)
                zeroed[i] += float(channel_zeroed[np.ix_(channels, channels)].sum())
                removed = (channels[:, None] * problem.kernel + np.arange(problem.kernel)).ravel()
                w = problem.weight[:, removed]
                residual = np.linalg.solve(problem.precision[np.ix_(removed, removed)], w.T)
                refit[i] += float(np.einsum("oi,io->", w, residual))
        share = np.where(zeroed > 0, refit / np.maximum(zeroed, 1e-300), 1.0)
        shares[name] = np.concatenate([[1.0], np.interp(np.arange(1, size + 1), grid, np.clip(share, 0.0, 1.0))])
    return shares


def zeroed_matrix(weight: np.ndarray, gram: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """``C[i, j] = sum_{a in block i, b in block j} (W^T W)_ab G_ab``: zeroing the input channels S of
    a consumer with weights ``W (out, columns)`` raises its summed squared output error by
    ``tr(W_S G_SS W_S^T) = sum_{i, j in S} C[i, j]``. ``blocks``: per channel, its columns."""
    columns = weight.shape[1]
    products = (weight.T @ weight) * gram[:columns, :columns]
    return products[blocks[:, :, None, None], blocks[None, None, :, :]].sum(axis=(1, 3))


def shares_of_prefixes(refit: np.ndarray, zeroed: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The shares ``r[k]``, ``k = 0..n`` (``r[0] = 1``) of a layer's first k channels in ``order``:
    ``refit[k]`` (the refit's error of that prefix, ``refit[0] = 0``) over the zeroed error of the
    same prefix, from the layer's :func:`zeroed_matrix` (summed over its consumers)."""
    ordered = zeroed[np.ix_(order, order)]
    zeroed_prefix = np.concatenate([[0.0], np.diagonal(ordered.cumsum(0).cumsum(1))])
    share = np.where(zeroed_prefix > 0, refit / np.maximum(zeroed_prefix, 1e-300), 1.0)
    share[0] = 1.0
    return np.clip(share, 0.0, 1.0)


def refit_problem(module: nn.Module, statistics: InputStatistics, ridge: float) -> RefitProblem:
    """A consumer's weight ``(out, columns)``, the inverse of its ridged Gram matrix, the Gram matrix
    and its kernel size (columns per input channel)."""
    if statistics.patch_gram is None:
        raise ValueError("the refit's problem (compensated shares, obs) needs input statistics gathered with "
                         "method='lsq'")
    weight = module.weight.detach().double().cpu()
    kernel = weight[0, 0].numel() if weight.dim() > 2 else 1
    gram = statistics.patch_gram.double().numpy()
    ridged = gram + ridge * np.diag(gram).mean() * np.eye(len(gram))
    return RefitProblem(weight.reshape(weight.shape[0], -1).numpy(), np.linalg.inv(ridged), gram, kernel)
