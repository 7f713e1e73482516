"""Several processes (``torchrun``), one run: what they share and how they agree.

A :class:`Collective` is the run's view of its process group. One process (the default,
:data:`SINGLE`) makes every method a no-op, so the engine has one code path. Under ``torchrun
--nproc_per_node N -m bayesprune run ...``, every process runs the same engine on the same data
and seeds, and:

- **fine-tuning** runs under :class:`~torch.nn.parallel.DistributedDataParallel`: every process
  draws the same global batch (same generator, same augmentation) and trains on its contiguous
  shard of it; each shard's mean loss is weighted by ``shard size x N / global batch``, so DDP's
  mean of the gradients is the gradient of the global batch's mean loss, as in one process.
  BatchNorm layers normalise with the *global* batch's statistics (:func:`shared_batch_norm`: the
  shards' sums are all-reduced, differentiably, as SyncBatchNorm does on GPU; PyTorch's has no
  CPU version), so N processes compute what one does up to the float-sum order;
- **evaluation** counts correct predictions on each process's shard and sums them (exact);
- **the gate Fisher** of ``bayes`` (:func:`bayesprune.fisher.gate_fisher`) computes each
  calibration batch's per-example gradients on the shards and gathers the rows back in order, so
  every process holds the one-process matrix;
- **the cut** (scores, decision, reparameterization) is computed by every process from the same
  statistics, but rank 0's decision is broadcast and applied by all, and rank 0's weights are
  broadcast after the cut: every process removes the same channels and holds the same network;
- only rank 0 writes the run directory and prints; a resumed run is read by every process.

What is *not* distributed (runs replicated on every process, no faster than in one): the other
criteria's statistics, ``bayes-svi``'s SVI, training-time methods' search, the compensation's
statistics. ``--target-latency`` and ``--round-to auto`` are refused: timings taken while N
processes share the machine would differ per process. The nccl path (GPU) is written but has not
run: the tests use gloo on CPU.
"""
from __future__ import annotations

import os
import types
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
from torch import nn

from .batchnorm_adaptation import running_norms
from .errors import ConfigError


@dataclass(frozen=True)
class Collective:
    """This process's place in the group: ``rank`` of ``world_size`` (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, device: torch.device) -> torch.device:
        """The device of this process: ``cuda:LOCAL_RANK`` for a CUDA run of several processes."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def shard(self, size: int) -> slice:
        """This process's contiguous part of ``size`` items; the parts cover them once, in order,
        and differ in length by at most one."""
        base, extra = divmod(size, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the processes."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._reduce_device())
        torch.distributed.all_reduce(tensor)
        return tensor.item()

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The processes' ``rows`` stacked in rank order (with :meth:`shard`: the original order)."""
        if not self.distributed:
            return rows
        parts = [None] * self.world_size
        torch.distributed.all_gather_object(parts, rows.cpu())
        return torch.cat(parts)

    def broadcast(self, value):
        """Rank 0's ``value`` (any picklable object) on every process."""
        if not self.distributed:
            return value
        holder = [value if self.is_main else None]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def broadcast_module(self, model: nn.Module) -> None:
        """Give every process rank 0's parameters and buffers (same shapes on all)."""
        if not self.distributed:
            return
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)

    @contextmanager
    def training(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` to train on this process's shards: under DDP with BatchNorm on the global batch's
        statistics when there are several processes (itself otherwise). Afterwards every process
        holds rank 0's parameters and buffers (equal up to float order already)."""
        if not self.distributed:
            yield model
            return
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        with shared_batch_norm(model):
            # buffers are not synced at each forward: shared_batch_norm keeps them equal
            yield DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          forward_sync_buffers=False)
        self.broadcast_module(model)  # float order aside, equal already: make them identical

    def _reduce_device(self) -> torch.device:
        nccl = torch.distributed.get_backend() == "nccl"
        return torch.device("cuda", self.local_rank) if nccl else torch.device("cpu")


SINGLE = Collective()


@contextmanager
def shared_batch_norm(model: nn.Module) -> Iterator[None]:
    """While inside, every BatchNorm of ``model`` in training mode normalises with the statistics of
    the processes' batches together (Ioffe & Szegedy 2015, Alg. 1, over the global batch): each
    process's per-channel sum, sum of squares and count are all-reduced with autograd
    (:class:`_SumOverProcesses`: its backward all-reduces the gradients, so each shard's gradient
    includes the other shards' losses through the shared statistics). The
    running statistics are updated as PyTorch does (unbiased variance, ``momentum`` or the
    cumulative average when it is None). Implemented by overriding each layer's ``forward`` on the
    instance, so parameters, buffers and hooks stay those of the model."""
    layers = running_norms(model)
    for layer in layers:
        layer.forward = types.MethodType(_global_batch_norm, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _global_batch_norm(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    if not self.training:
        return type(self).forward(self, x)
    dims = [0, *range(2, x.dim())]
    channels = x.shape[1]
    count = x.new_tensor([x.numel() / channels])
    # the shard's sums in its own precision (the activation tensor is not copied), added in float64
    total = _SumOverProcesses.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]).double())
    n = total[-1]
    mean = total[:channels] / n
    var = (total[channels:2 * channels] / n - mean ** 2).clamp_min(0.0)  # biased, as the normalisation uses
    with torch.no_grad():
        self.num_batches_tracked.add_(1)
        factor = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean.dtype))
        unbiased = var * n / (n - 1).clamp_min(1.0)
        self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var.dtype))
    scale = torch.rsqrt(var + self.eps).to(x.dtype)  # per channel: y = x * scale + shift, one pass over x
    shift = -mean.to(x.dtype) * scale
    if self.affine:
        scale, shift = scale * self.weight, shift * self.weight + self.bias
    shape = (1, channels, *[1] * (x.dim() - 2))
    return torch.addcmul(shift.view(shape), x, scale.view(shape))

# the longest one process may wait for the others (replicated steps such as bayes-svi's SVI can take long)
TIMEOUT = timedelta(hours=2)


def launched_processes() -> int:
    """How many processes ``torchrun`` started for this job (1 when not started by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join(device_name: str) -> Collective:
    """Join the process group ``torchrun`` set up (its environment variables): nccl when the run
    is on CUDA, gloo otherwise. One process (no ``torchrun``): :data:`SINGLE`, nothing joined."""
    world_size = launched_processes()
    if world_size == 1:
        return SINGLE
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    except (KeyError, ValueError):
        raise ConfigError("WORLD_SIZE is set but RANK/LOCAL_RANK are not: start several processes with "
                          "torchrun --nproc_per_node N -m bayesprune ...") from None
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return Collective(rank, world_size, local_rank)


def leave(collective: Collective) -> None:
    """Leave the process group together (a process that tears down its connections while another
    still uses them can abort in gloo's threads)."""
    if collective.distributed and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over the processes; the gradient of every process's input is the sum of
    the processes' output gradients (each output depends on every input with weight 1)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        torch.distributed.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        torch.distributed.all_reduce(total)
        return total
