"""The runtimes an exported model runs in: each writes a model file, loads it back as a function
``numpy (N, C, H, W) float32 -> numpy logits``, and says what it is (versions)."""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import BayesPruneError

DEPLOY_EXTRA = "pip install -c constraints.txt 'bayesprune[deploy]'"


class OnnxRuntime:
    """ONNX through ``torch.onnx.export(dynamo=True)``, batch dimension dynamic; checked with
    ``onnx.checker``; run with onnxruntime on the CPU."""

    def __init__(self, threads: int | None = None):
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401  (the dynamo exporter needs it)
        except ImportError as exc:
            raise BayesPruneError(f"ONNX export needs onnx, onnxscript and onnxruntime ({exc.name} is missing): "
                                  f"{DEPLOY_EXTRA}") from None
        self.threads = threads

    def write(self, model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
        import onnx

        batch = torch.export.Dim("batch", min=1, max=65536)
        try:
            with _quiet_exporter():
                program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                            verbose=False, report=False)
            program.save(str(path))
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:  # the exporter's and checker's errors are many kinds
            from .export import ExportError

            raise ExportError(f"torch.onnx.export failed: {str(exc).splitlines()[0][:200]}") from exc

    def load(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def describe(self) -> str:
        import onnx
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__} (onnx {onnx.__version__}), CPUExecutionProvider"


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter logs and warns about its own internals (torchvision ops it skips,
    deprecations inside torch): nothing a user can act on."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class TorchScriptRuntime:
    """``torch.jit.trace`` in eval mode, reloaded with ``torch.jit.load`` (plain PyTorch, no bayesprune)."""

    def write(self, model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            traced = torch.jit.trace(model.eval(), example, check_trace=False)
        traced.save(str(path))

    def load(self, path: Path):
        module = torch.jit.load(str(path), map_location="cpu").eval()

        def run(x):
            with torch.no_grad():
                return module(torch.as_tensor(x)).numpy()
        return run

    def describe(self) -> str:
        return f"torch.jit {torch.__version__}"
