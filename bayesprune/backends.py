"""Where the cells of a comparison grid run: here, one after the other (:class:`Sequential`), or as
Ray tasks on a local or remote Ray cluster (:class:`RayBackend`). A backend runs the cells still to do
and returns their rows by key; every cell writes its own row file when it finishes
(:func:`bayesprune.compare.run_cell`), so a grid resumes the same way on either."""
from __future__ import annotations

from dataclasses import dataclass

from .distributed import SINGLE, Collective
from .errors import BayesPruneError, ConfigError
from .progress import progress_bar

RAY_EXTRA = "pip install -c constraints.txt 'bayesprune[distributed]'"


@dataclass(frozen=True)
class Sequential:
    """In this process, one cell after another (the default). Under ``torchrun``, ``collective``
    is the job's processes: every cell runs on all of them (:mod:`bayesprune.distributed`) and rank 0
    writes the grid's files."""

    collective: Collective = SINGLE
    name = "sequential"

    def check(self) -> None:
        pass

    def run(self, cells, runner, progress: bool) -> dict:
        from .compare import run_cell

        rows = {}
        bar = progress_bar(cells, desc="compare", enabled=progress and self.collective.is_main, unit="run")
        for cell in bar:
            bar.set_postfix(cell=cell.key)
            rows[cell.key] = run_cell(cell, runner, self.collective)
        return rows


@dataclass
class RayBackend:
    """Each cell is a Ray task with its own resources (``num_cpus``, ``num_gpus`` per cell).
    ``address``: a running cluster (``ray://host:10001`` or ``host:6379``); None starts a local
    Ray instance with ``local_cpus`` CPUs (all of them when None). The tasks read and write the grid's
    folder, so on a multi-machine cluster it must be on storage every node mounts."""

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    local_cpus: int | None = None
    name = "ray"
    collective = SINGLE  # the driver is one process; each task is one run

    def check(self) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise BayesPruneError(f"--backend ray needs Ray, which is not installed: {RAY_EXTRA}") from None
        if self.num_cpus <= 0 or self.num_gpus < 0:
            raise ConfigError(f"--cpus-per-cell must be > 0 and --gpus-per-cell >= 0, got {self.num_cpus} and "
                              f"{self.num_gpus}")
        self._connect()

    def _connect(self) -> None:
        import ray

        if self.address:
            _check_reachable(self.address)  # Ray itself retries an unreachable address for minutes
        if ray.is_initialized():  # a Ray the caller started (e.g. a test's local instance)
            return
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.local_cpus, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # Ray's connection errors are many kinds (ConnectionError, RuntimeError, ...)
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise BayesPruneError(f"cannot connect to {where} ({str(exc).splitlines()[0][:160]}); check "
                                  "--ray-address (ray status on the head node shows it)") from None

    def run(self, cells, runner, progress: bool) -> dict:
        import ray

        from .compare import run_cell

        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(run_cell)
        futures = {task.remote(cell, runner): cell.key for cell in cells}
        rows = {}
        bar = progress_bar(total=len(futures), desc="compare (ray)", enabled=progress, unit="run")
        pending = list(futures)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for future in ready:
                rows[futures[future]] = ray.get(future)
                bar.update(1)
        bar.close()
        return rows


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A TCP connection to ``[ray://]host:port`` opens within ``timeout`` seconds, else one line."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} must be HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise BayesPruneError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
                              "`ray start --head` on the head node, or check --ray-address") from None
