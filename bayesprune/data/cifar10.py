"""CIFAR-10 (Krizhevsky 2009) from the python-format batches in a local directory.

The batches are Python pickles; we unpickle them with an allow-list that admits only the numpy
array reconstruction they need, so a tampered file cannot execute code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import ImageData, from_arrays

TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
HOW_TO_GET = ("pass --data-dir pointing at the extracted 'cifar-10-batches-py' folder "
              "(data_batch_1..5 and test_batch from cifar-10-python.tar.gz)")
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"cifar10: {path} not found; {HOW_TO_GET}")
    try:
        with open(path, "rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"cifar10: {path} is not a CIFAR-10 python batch ({exc}); {HOW_TO_GET}") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"cifar10: {path} has data of shape {data.shape}; expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32), labels


def load(data_dir: str | Path | None = None) -> ImageData:
    if data_dir is None:
        raise DataError(f"cifar10 is not bundled; {HOW_TO_GET}")
    directory = Path(data_dir)
    if not directory.is_dir():
        raise DataError(f"cifar10: directory {directory} does not exist; {HOW_TO_GET}")
    parts = [_read_batch(directory / name) for name in TRAIN_FILES]
    test_x, test_y = _read_batch(directory / TEST_FILE)
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    return from_arrays("cifar10", train_x, train_y, test_x, test_y, num_classes=10, augment=True)
