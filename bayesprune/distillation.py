"""Knowledge distillation from one or more teacher networks (Hinton, Vinyals & Dean 2015).

Used by ``search-train`` (several teachers) and by ``--distill`` (the unpruned base network as
the teacher of every round's fine-tuning, for any criterion).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .training import LossFn


def multi_teacher_loss(student: torch.Tensor, teachers: list[torch.Tensor], labels: torch.Tensor,
                       temperature: float = 4.0, alpha: float = 0.5) -> torch.Tensor:
    """``(1 - alpha) CE + alpha T^2 mean_k KL(p_k^T || p^T)`` (Hinton et al. 2015, sec. 2, averaged
    over teachers as in You et al. 2017, KDD, "Learning from multiple teacher networks")."""
    ce = F.cross_entropy(student, labels)
    if not teachers:
        return ce
    log_p = F.log_softmax(student / temperature, dim=1)
    kl = torch.stack([F.kl_div(log_p, F.log_softmax(t / temperature, dim=1), log_target=True,
                               reduction="batchmean") for t in teachers]).mean()
    return (1 - alpha) * ce + alpha * temperature ** 2 * kl


def distillation_loss(teacher: nn.Module, alpha: float, temperature: float) -> LossFn:
    """A :func:`~bayesprune.training.fit` loss: the student's cross-entropy mixed with the KL to
    ``teacher``'s softened predictions (the teacher stays in eval mode and is not trained)."""
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)

    def loss(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(xb)
        return multi_teacher_loss(net(xb), [target], yb, temperature, alpha)

    return loss
