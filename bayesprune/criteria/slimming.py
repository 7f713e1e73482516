"""Network slimming: train with an L1 penalty on BatchNorm scales, then score |gamma| (Liu et al. 2017)."""
from __future__ import annotations

import torch
from torch import nn

from ..data import iterate_batches
from .bn_scale import BatchNormScale


class Slimming(BatchNormScale):
    """Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming", eq. 1:
    train on ``loss + lambda * sum |gamma|`` (subgradient ``lambda * sign(gamma)`` on the scales),
    then score channels by ``|gamma|`` (sec. 3.2). Liu et al. train from scratch with the penalty;
    as a pruning criterion for a trained network we run ``epochs`` of sparsity fine-tuning on the
    training set before every round's scoring (SGD, ``lr``; our choice), which moves the weights:
    slimming is a method, not only a score.

    Params:
        sparsity: lambda (Liu et al. use 1e-4 to 1e-5 on CIFAR).
        epochs: sparsity-training epochs per round.
        lr: learning rate of that training.
    """

    name = "slimming"
    description = "L1-sparsified BatchNorm scales: sparsity training, then |gamma| (Liu et al. 2017)"
    source = "Liu et al. 2017, ICCV, eq. 1 and sec. 3.2"
    needs_data = True

    def __init__(self, sparsity: float = 1e-4, epochs: float = 0.5, lr: float = 0.01, seed: int = 0):
        self.sparsity, self.epochs, self.lr, self.seed = sparsity, epochs, lr, seed

    def prepare(self, model, graph, calibration) -> None:
        data = calibration.data
        scales = [m.weight for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)
        steps = max(1, round(self.epochs * len(data.train_y) / calibration.batch_size))
        generator = torch.Generator().manual_seed(self.seed)
        model.train()
        done = 0
        while done < steps:
            for xb, yb in iterate_batches(data.train_x, data.train_y, calibration.batch_size, shuffle=True,
                                          generator=generator, augment=data.augment, device=calibration.device):
                optimizer.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(xb), yb).backward()
                with torch.no_grad():
                    for gamma in scales:  # subgradient of lambda * |gamma|
                        if gamma.grad is not None:
                            gamma.grad.add_(self.sparsity * torch.sign(gamma))
                optimizer.step()
                done += 1
                if done >= steps:
                    break
        model.eval()
