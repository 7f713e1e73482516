"""Accuracy of many cuts of one network without cutting it: each cut is applied as 0/1 channel
masks (:class:`~bayesprune.gates.ChannelGates`) after the run's reparameterization, on a working
copy whose weights are restored between cuts.

A removed channel's gate is 0 right after its BatchNorm, so every consumer reads zeros from it,
which is what the physical cut leaves (its consumers lose that input); the reparameterization
(``mean``/``lsq`` compensation of the consumers, :mod:`bayesprune.surgery.compensate`) is made on
the unpruned network as the run makes it. The masked and the cut network agree (a test checks it).
With ``adapt_batchnorm`` every cut's BatchNorm statistics are re-estimated on the calibration
batches before it is scored (:mod:`bayesprune.batchnorm_adaptation`), as fine-tuning would.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .batchnorm_adaptation import adapt_batchnorm
from .gates import ChannelGates
from .groups import ChannelGraph
from .surgery import compensate, fold_gates
from .surgery.compensate import NamedStatistics, input_statistics
from .training import evaluation_batch_size, scores_per_image


class MaskedCuts:
    """Evaluates cuts (kept-channel flags in the order of ``ChannelGates``) of ``model`` on images."""

    def __init__(self, model, example_input: torch.Tensor, calibration, reparameterize: str = "mean",
                 scales: torch.Tensor | None = None, seed: int = 0, statistics: NamedStatistics | None = None,
                 adapt_batchnorm: bool = False):
        """``scales``: the criterion's per-channel multipliers, folded in before every cut as the run
        folds them before its compensation (or None). ``statistics``: the input statistics of
        ``model`` (as folded), already gathered for every layer with ``reparameterize`` and ``seed``
        (then no data is read here). ``adapt_batchnorm``: re-estimate each cut's BatchNorm statistics
        on the calibration batches before scoring it (Li et al. 2020's adaptive BatchNorm)."""
        self.adapt_batchnorm = adapt_batchnorm
        self.model = copy.deepcopy(model).eval()
        self.graph = ChannelGraph(self.model, example_input)
        self.gates = ChannelGates(self.graph)
        self.calibration, self.reparameterize, self.seed = calibration, reparameterize, seed
        if reparameterize != "none" and scales is not None:  # the run folds them before it compensates
            fold_gates(self.gates, scales)
        self.state = copy.deepcopy(self.model.state_dict())
        # compensation reads the (folded) unpruned network's input statistics, the same for every cut: once
        given = None if statistics is None else statistics.for_model(self.model, reparameterize, seed)
        self.statistics = given if given is not None else (
            input_statistics(self.graph, calibration.batches(), reparameterize, seed=seed)
            if reparameterize in ("mean", "lsq") else None)

    def named_statistics(self) -> NamedStatistics | None:
        """The input statistics gathered for every layer, by module name: those the run's own
        compensation of this network reads (None without ``mean``/``lsq``)."""
        if self.statistics is None:
            return None
        return NamedStatistics.of(self.model, self.statistics, self.reparameterize, self.seed)

    def accuracy(self, kept: np.ndarray, x: torch.Tensor, y: torch.Tensor, device) -> float:
        """Top-1 accuracy on ``(x, y)`` of the network cut to ``kept``, reparameterized as a run does."""
        return self.measure(kept, x, y, device)[0]

    def measure(self, kept: np.ndarray, x: torch.Tensor, y: torch.Tensor, device) -> tuple[float, np.ndarray]:
        """Top-1 accuracy and every image's log-likelihood (nats) on ``(x, y)`` of the network cut to
        ``kept``, reparameterized as a run does."""
        correct, log_likelihood = self.per_image(kept, x, y, device)
        return float(correct.mean()) if len(correct) else 0.0, log_likelihood

    @torch.no_grad()
    def per_image(self, kept: np.ndarray, x: torch.Tensor, y: torch.Tensor, device,
                  batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Whether each image of ``(x, y)`` is classified right, and its log-likelihood (nats), by the
        network cut to ``kept``, reparameterized as a run does."""
        batch_size = batch_size or evaluation_batch_size(device)
        self.model.load_state_dict(self.state)
        if self.reparameterize != "none":
            compensate(self.graph, self.gates.removal(kept), self.calibration.batches(), self.reparameterize,
                       seed=self.seed, statistics=self.statistics)
        self.gates.values = torch.as_tensor(np.asarray(kept), dtype=torch.float32).to(device)
        try:
            with self.gates:
                self.model.to(device).eval()
                if self.adapt_batchnorm:  # the removed channels' zeros reach every later norm
                    adapt_batchnorm(self.model, self.calibration.batches())
                correct, log_likelihood = scores_per_image(self.model, x, y, device, batch_size)
        finally:
            self.gates.values = None
        return correct.numpy(), log_likelihood.numpy()
