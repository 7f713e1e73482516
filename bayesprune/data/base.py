"""In-memory image classification data and the batch iterator shared by all readers.

All offline data sets here fit in memory, so batches are slices of tensors: no DataLoader
workers (2-core machines) and exact reproducibility from one ``torch.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..errors import DataError


@dataclass
class ImageData:
    """A train/test split of normalised images ``(N, C, H, W)`` float32 and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augment: bool = False  # random crop + horizontal flip during training
    # how raw pixels became these tensors: {"scale", "mean", "std"} (x / scale - mean) / std per channel
    normalisation: dict | None = None

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[2])

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train_y)} train / {len(self.test_y)} test, "
                f"{self.in_channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes")

    def subset(self, train: int | None = None, test: int | None = None) -> "ImageData":
        """The first ``train``/``test`` examples (splits are already shuffled), for quick runs."""
        return ImageData(self.name, self.train_x[:train], self.train_y[:train], self.test_x[:test],
                         self.test_y[:test], self.num_classes, self.augment, self.normalisation)


def from_arrays(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                test_y: np.ndarray, num_classes: int, augment: bool = False) -> ImageData:
    """Build :class:`ImageData` from ``uint8``/float arrays ``(N, C, H, W)``.

    Pixels are scaled to [0, 1] by the array's nominal maximum and standardised per channel
    with the *training* mean and std, so test statistics never leak into the transform.
    """
    if train_x.ndim != 4 or test_x.ndim != 4:
        raise DataError(f"{name}: images must be 4-D (N, C, H, W), got {train_x.shape}; "
                        "check the files are the unmodified originals")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"{name}: image and label counts differ; re-download the data set")
    scale = 255.0 if train_x.dtype == np.uint8 else float(max(train_x.max(), 1.0))
    tx = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32)) / scale
    vx = torch.from_numpy(np.ascontiguousarray(test_x, dtype=np.float32)) / scale
    mean = tx.mean(dim=(0, 2, 3), keepdim=True)
    std = tx.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    normalisation = {"scale": scale, "mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    return ImageData(name, (tx - mean) / std, torch.tensor(np.asarray(train_y), dtype=torch.int64),
                     (vx - mean) / std, torch.tensor(np.asarray(test_y), dtype=torch.int64),
                     num_classes, augment, normalisation)


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip, batched on the tensor's device."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def iterate_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                    generator: torch.Generator | None = None, augment: bool = False,
                    device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches moved to ``device``; shuffling needs a ``generator``."""
    order = torch.randperm(len(y), generator=generator) if shuffle else torch.arange(len(y))
    for start in range(0, len(y), batch_size):
        idx = order[start:start + batch_size]
        xb = x[idx]
        if augment:
            xb = augment_batch(xb, generator)
        yield xb.to(device, non_blocking=True), y[idx].to(device, non_blocking=True)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled, class-stratified train/test index split (scikit-learn), deterministic in ``seed``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                           shuffle=True, stratify=labels)
    return train_idx, test_idx
