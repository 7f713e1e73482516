"""Reader for the IDX format of (Fashion-)MNIST (LeCun et al.), gzip-compressed or plain."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import DataError

_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """Return the uint8 array stored in an IDX file; a bad header or length is a :class:`DataError`."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:  # truncated gzip streams raise EOFError
        raise DataError(f"cannot read {path}: {exc}; replace the file with an intact copy") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        raise DataError(f"{path} is not an IDX uint8 file (wrong magic number); "
                        "replace it with the original from the data set")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header); replace it with an intact copy")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path} holds {len(raw) - header} bytes of data but its header promises "
                        f"{expected}; the file is truncated or corrupt, replace it")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
