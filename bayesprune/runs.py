"""Run-directory I/O. Every file is written atomically (temp file in the same folder, fsync,
rename), so a killed process leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import RunDirError

RUN_MARKER = "config.json"  # a directory holding this file is a bayesprune run


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library that writes files itself; on
    success it is renamed onto ``path``, on failure removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class RunDir:
    """A run's output folder: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``model.pt``."""

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"output path {self.path} is a file; pass --out with a directory path")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise RunDirError(f"output directory {self.path} is not empty; choose another --out "
                              "or pass --overwrite to replace its run")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"cannot write to output directory {self.path} ({exc.strerror}); "
                              "choose a writable --out") from exc
        if overwrite:
            for name in ("config.json", "metrics.jsonl", "summary.json", "model.pt"):
                (self.path / name).unlink(missing_ok=True)
        self._metrics: list[str] = []

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.file(name), obj)

    def log_metrics(self, record: dict) -> None:
        """Append one JSON line; the whole file is rewritten atomically (it stays small)."""
        self._metrics.append(json.dumps(record, default=_json_default))
        atomic_write_text(self.file("metrics.jsonl"), "\n".join(self._metrics) + "\n")
