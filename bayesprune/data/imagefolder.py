"""A folder of images in one sub-folder per class, read with torchvision (the ``vision`` extra).

Expected layout: ``DIR/train/<class>/*.png`` and ``DIR/test/<class>/*.png``; images are resized
to ``IMAGE_SIZE`` squares. Everything is loaded into memory, so this suits small data sets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import ImageData, from_arrays

IMAGE_SIZE = 32


def _torchvision():
    try:
        import torchvision  # noqa: F401  (optional extra; never imported at module level)
        from torchvision import datasets, transforms
    except Exception as exc:  # broad: a CUDA-built torchvision beside CPU torch raises RuntimeError
        raise DataError("imagefolder needs a working torchvision (pip install 'bayesprune[vision]' "
                        f"with a matching torch); importing it failed: {exc}") from exc
    return datasets, transforms


def _read(root: Path, classes: list[str] | None):
    datasets, transforms = _torchvision()
    tf = transforms.Compose([transforms.Resize((IMAGE_SIZE, IMAGE_SIZE)), transforms.PILToTensor()])
    folder = datasets.ImageFolder(str(root), transform=tf)
    if classes is not None and folder.classes != classes:
        raise DataError(f"imagefolder: {root} has classes {folder.classes}, train has {classes}")
    images = np.stack([np.asarray(img) for img, _ in folder])
    labels = np.asarray(folder.targets, dtype=np.int64)
    return images, labels, folder.classes


def load(data_dir: str | Path | None = None) -> ImageData:
    if data_dir is None:
        raise DataError("imagefolder needs --data-dir DIR with DIR/train/<class>/ and DIR/test/<class>/")
    root = Path(data_dir)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"imagefolder: {root / split} does not exist; put one sub-folder of "
                            "images per class under DIR/train and DIR/test")
    train_x, train_y, classes = _read(root / "train", None)
    test_x, test_y, _ = _read(root / "test", classes)
    return from_arrays("imagefolder", train_x, train_y, test_x, test_y, num_classes=len(classes),
                       augment=True)
