"""scikit-learn's 8x8 handwritten digits (1,797 images, pixel values 0-16), offline."""
from __future__ import annotations

import numpy as np

from .base import ImageData, from_arrays, stratified_split

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load(data_dir=None) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    return from_arrays("digits", images[train_idx], labels[train_idx], images[test_idx],
                       labels[test_idx], num_classes=10)
