"""First-order Taylor estimate of the loss change when a channel goes (Molchanov et al. 2019)."""
from __future__ import annotations

import torch
from torch import nn

from ..gates import ChannelGates
from .base import Criterion
from .feature_maps import PreparedScores


class Taylor(PreparedScores, Criterion):
    """Molchanov et al. 2019, "Importance Estimation for Neural Network Pruning", sec. 3:
    ``I_c = (sum_{s in S_c} g_s w_s)^2`` per minibatch, averaged over minibatches, with S_c the
    channel's gate parameters: the BatchNorm's gamma and beta after the channel (their "BN"
    variant) or, without BatchNorm, the filter and bias that produce it. Parameters of a coupled
    group (every BatchNorm of a residual stage) are summed before squaring, as one gate.
    ``needs_data``: forward and backward passes over the calibration batches (cross-entropy loss).
    """

    name = "taylor"
    description = "first-order Taylor estimate of the loss change, (sum g*w)^2 (Molchanov et al. 2019)"
    source = "Molchanov et al. 2019, CVPR, sec. 3"
    needs_data = True

    def prepare(self, model, graph, calibration) -> None:
        gates = ChannelGates(graph)
        totals = torch.zeros(gates.num_channels, dtype=torch.float64)
        batches = 0
        was_training = model.training
        model.eval()  # BatchNorm with running statistics: the network being pruned
        try:
            for xb, yb in calibration.batches():
                model.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(xb), yb).backward()
                contribution = torch.zeros(gates.num_channels, dtype=torch.float64)
                for module, channel_index in gates.targets:
                    contribution.index_add_(0, channel_index.cpu(), _gate_product(module))
                totals += contribution.pow(2)
                batches += 1
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        self.importance, self.gates = totals / max(1, batches), gates
        self.graph = graph

    def group_scores(self, index: int) -> torch.Tensor:
        return self.importance[self.gates.group_slice(index)]


def _gate_product(module: nn.Module) -> torch.Tensor:
    """``sum g*w`` per output channel over the module's gate parameters."""
    total = None
    for parameter in (module.weight, module.bias):
        if parameter is None or parameter.grad is None:
            continue
        product = (parameter.detach() * parameter.grad.detach()).double().cpu()
        product = product.flatten(1).sum(1) if product.dim() > 1 else product
        total = product if total is None else total + product
    if total is None:
        return torch.zeros(module.weight.shape[0], dtype=torch.float64)
    return total
