"""Fashion-MNIST (Xiao et al. 2017) from its IDX files: 60,000 train / 10,000 test, 28x28."""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .base import ImageData, from_arrays
from .idx import read_idx

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = ("install Debian's package (apt-get install dataset-fashion-mnist) or pass --data-dir "
              "with the four IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
              "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])")


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"fashion-mnist: {directory / stem}[.gz] not found; {HOW_TO_GET}")


def load(data_dir: str | Path | None = None) -> ImageData:
    directory = Path(data_dir) if data_dir else DEFAULT_DIR
    if not directory.is_dir():
        raise DataError(f"fashion-mnist: directory {directory} does not exist; {HOW_TO_GET}")
    arrays = {key: read_idx(_find(directory, stem)) for key, stem in FILES.items()}
    for split in ("train", "test"):
        images = arrays[f"{split}_x"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"fashion-mnist: {split} images have shape {images.shape}, expected "
                            "(N, 28, 28); replace the files with the originals")
    return from_arrays("fashion-mnist", arrays["train_x"][:, None], arrays["train_y"],
                       arrays["test_x"][:, None], arrays["test_y"], num_classes=10, augment=True)
