"""Training, fine-tuning and evaluation loops (SGD + cosine schedule), with tqdm progress."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .data import ImageData, iterate_batches
from .distributed import SINGLE, Collective
from .errors import TrainingError
from .faults import crash_point
from .progress import progress_bar

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a generator for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from .errors import BayesPruneError

        raise BayesPruneError(f"--device {name} asked for, but this torch has no CUDA; use --device cpu")
    return torch.device(name)


@dataclass
class FitConfig:
    epochs: float = 1.0  # fractional epochs allowed: quick fine-tunes on big data sets
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    warmup_fraction: float = 0.0  # linear warm-up share of the steps, for training from scratch
    # (first step, steps) of one cosine that spans several fits, e.g. every round of a run (--lr-schedule run);
    # None: each fit decays from lr to 0 on its own
    cosine_window: tuple[int, int] | None = None


def total_steps(config: FitConfig, train_size: int) -> int:
    """How many optimiser steps :func:`fit` takes: ``epochs`` passes, at least one step (0 for no epochs)."""
    return max(1, round(config.epochs * math.ceil(train_size / config.batch_size))) if config.epochs > 0 else 0


def fit(model: nn.Module, data: ImageData, config: FitConfig, generator: torch.Generator,
        device: torch.device, progress: bool = True, desc: str = "train", *,
        extra_parameters: Iterable[nn.Parameter] = (), loss_fn: LossFn | None = None,
        after_step: Callable[[int], None] | None = None, after_epoch: Callable[[int], None] | None = None,
        collective: Collective = SINGLE) -> dict:
    """Train in place with SGD (Nesterov) and a cosine learning rate; return ``{"loss", "steps"}``.

    A non-finite loss raises :class:`TrainingError` before the bad step is applied. For methods
    that prune while training: ``extra_parameters`` (e.g. gate networks) are optimised with the
    model's, ``loss_fn(model, x, y)`` replaces cross-entropy (e.g. distillation), ``after_step(step)``
    runs after each optimiser step and ``after_epoch(epoch)`` after each full pass over the data
    (and after the last step of a fractional epoch). With a ``collective`` of several processes,
    each trains on its shard of every global batch under DDP (see :mod:`bayesprune.distributed`).
    """
    model.to(device).train()
    steps_per_epoch = math.ceil(len(data.train_y) / config.batch_size)
    total = total_steps(config, len(data.train_y))
    if total == 0:
        return {"loss": float("nan"), "steps": 0}
    decay, no_decay = [], []
    for p in [*model.parameters(), *extra_parameters]:
        (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN and biases
    opt = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=config.lr, momentum=config.momentum, nesterov=True)
    warmup = int(config.warmup_fraction * total)

    def lr_at(step: int) -> float:
        if step < warmup:
            return config.lr * (step + 1) / warmup
        if config.cosine_window is not None:
            first, span = config.cosine_window
            return 0.5 * config.lr * (1 + math.cos(math.pi * min(first + step, span) / span))
        return 0.5 * config.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    cross_entropy = nn.CrossEntropyLoss()
    loss_fn = loss_fn or (lambda net, xb, yb: cross_entropy(net(xb), yb))
    with collective.training(model) as net:  # under DDP with several processes
        step, running = 0, 0.0
        bar = progress_bar(total=total, desc=desc, enabled=progress, leave=False, unit="step")
        while step < total:
            for xb, yb in iterate_batches(data.train_x, data.train_y, config.batch_size, shuffle=True,
                                          generator=generator, augment=data.augment, device=device):
                crash_point("finetune-step")
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
                part = collective.shard(len(yb))
                # an empty shard (a last batch smaller than the process count) still joins the
                # all-reduces, with one example at weight 0 (which BatchNorm's statistics do count)
                shard = part if part.stop > part.start else slice(0, 1)
                weight = (part.stop - part.start) * collective.world_size / len(yb)
                loss = loss_fn(net, xb[shard], yb[shard]) * weight
                batch_loss = collective.sum(loss.item()) / collective.world_size  # every process sees a bad step
                if not math.isfinite(batch_loss):
                    bar.close()
                    raise TrainingError(f"non-finite loss ({batch_loss}) at step {step} of {desc}; "
                                        f"lower the learning rate (now {config.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running = 0.9 * running + 0.1 * batch_loss if step else batch_loss
                step += 1
                bar.set_postfix(loss=f"{running:.3f}", refresh=False)  # drawn by update, at its own pace
                bar.update(1)
                if after_step is not None:
                    after_step(step)
                if after_epoch is not None and (step % steps_per_epoch == 0 or step == total):
                    after_epoch(math.ceil(step / steps_per_epoch) - 1)
                if step >= total:
                    break
        bar.close()
    return {"loss": running, "steps": step}


def evaluation_batch_size(device) -> int:
    """Images per forward pass when only evaluating: 128 on a CPU, where batches of 512 outgrow the
    caches (small CNN, 1,000 MNIST images: 0.37 s against 0.67 s; ResNet-20 on 3x32x32: 0.60 against
    1.23 s, 2 cores, medians of 4-8 repetitions); 512 on an accelerator. Per-image results do not depend on it."""
    return 128 if torch.device(device).type == "cpu" else 512


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             batch_size: int | None = None, collective: Collective = SINGLE) -> float:
    """Top-1 accuracy in [0, 1] (several processes: each counts its shard, the counts are summed)."""
    part = collective.shard(len(y))
    correct = int(correct_per_image(model, x[part], y[part], device, batch_size).sum())
    return collective.sum(correct) / max(1, len(y))


@torch.no_grad()
def correct_per_image(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                      batch_size: int | None = None) -> torch.Tensor:
    """Whether ``model`` classifies each image of ``(x, y)`` right (a boolean tensor on the CPU)."""
    return scores_per_image(model, x, y, device, batch_size)[0]


@torch.no_grad()
def scores_per_image(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                     batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether ``model`` classifies each image of ``(x, y)`` right (boolean) and each image's
    log-likelihood in nats (float64), both on the CPU, in inference mode (the model's mode is restored)."""
    batch_size = batch_size or evaluation_batch_size(device)
    was_training = model.training
    model.to(device).eval()
    correct, log_likelihood = [], []
    try:
        for xb, yb in iterate_batches(x, y, batch_size, device=device):
            logits = model(xb)
            correct.append((logits.argmax(1) == yb).cpu())
            log_likelihood.append(-nn.functional.cross_entropy(logits, yb, reduction="none").double().cpu())
    finally:
        model.train(was_training)
    if not correct:
        return torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.float64)
    return torch.cat(correct), torch.cat(log_likelihood)


@torch.no_grad()
def forward_with_hooks(model: nn.Module, batches, handles: list) -> None:
    """Run ``batches`` through ``model`` in eval mode for the hooks behind ``handles`` to observe;
    the hooks are removed and the model's mode restored afterwards, whatever happens."""
    was_training = model.training
    model.eval()
    try:
        for xb, _yb in batches:
            model(xb)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
