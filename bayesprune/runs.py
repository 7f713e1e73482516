"""Run-directory I/O. Every file is written atomically (temp file in the same folder, fsync,
rename), so a killed process leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import RunDirError
from .faults import crash_point

RUN_MARKER = "config.json"  # a directory holding this file is a bayesprune run
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "model.pt", "resume.pt", "plan.json", "plan.md",
             "plan.png", "latency_table.json", "width_steps.json")
RUN_PATTERNS = ("posterior_round*.nc", "keep_probability_round*.csv")


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
        crash_point("atomic-write")
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


def check_writable(path: str | Path, flag: str) -> None:
    """Raise :class:`RunDirError` unless the directory ``path`` exists or could be created and written;
    leaves nothing behind (a probe file in the nearest existing ancestor is removed at once)."""
    import tempfile

    path = Path(path)
    ancestor = path
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RunDirError(f"{flag} {path}: {ancestor} is a file, not a directory; choose a writable {flag}")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise RunDirError(f"{flag} {path}: cannot write in {ancestor} ({exc.strerror}); "
                          f"choose a writable {flag}") from None


def check_run_dir(path: str | Path, overwrite: bool = False) -> None:
    """Raise :class:`RunDirError` if ``path`` cannot become an output directory (a file, or a folder
    with something in it and no ``overwrite``); creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output path {path} is a file; pass --out with a directory path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        if (path / RUN_MARKER).is_file():
            raise RunDirError(f"output directory {path} already holds a run; pass --resume {path} "
                              "to continue it, --overwrite to replace it, or choose another --out")
        raise RunDirError(f"output directory {path} is not empty; choose another --out "
                          "or pass --overwrite to replace its contents")
    check_writable(path, "--out")


class RunDir:
    """A run's output folder: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``model.pt``."""

    def __init__(self, path: str | Path, overwrite: bool = False, resume: bool = False):
        self.path = Path(path)
        check_run_dir(self.path, overwrite or resume)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"cannot write to output directory {self.path} ({exc.strerror}); "
                              "choose a writable --out") from exc
        if overwrite:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for pattern in RUN_PATTERNS:
                for stale in self.path.glob(pattern):
                    stale.unlink()
            shutil.rmtree(self.path / "report", ignore_errors=True)
        for orphan in self.path.glob(".*.tmp"):  # temp files of a killed process: never complete
            orphan.unlink()
        self._metrics: list[str] = []

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self._metrics]

    def restore_metrics(self, events: list[dict]) -> None:
        """Rewrite ``metrics.jsonl`` to ``events`` (on resume: drop lines of an unfinished round)."""
        self._metrics = [json.dumps(e, default=_json_default) for e in events]
        self._write_metrics()

    def _write_metrics(self) -> None:
        atomic_write_text(self.file("metrics.jsonl"), "\n".join(self._metrics) + "\n")

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.file(name), obj)

    def log_metrics(self, record: dict) -> None:
        """Append one JSON line; the whole file is rewritten atomically (it stays small)."""
        self._metrics.append(json.dumps(record, default=_json_default))
        self._write_metrics()
