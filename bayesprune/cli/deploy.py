"""``bayesprune export`` and ``bayesprune latency``: their options and commands."""
from __future__ import annotations


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="write a pruned checkpoint as a plain ONNX or TorchScript file with a card",
                       description="Export a bayesprune checkpoint (e.g. RUN_DIR/model.pt) to a model file that runs "
                                   "without bayesprune, check it against PyTorch on test images and write a card "
                                   "(input shape and normalisation, classes, accuracy, MACs, params, base model).")
    p.add_argument("model", help="checkpoint .pt (e.g. RUN_DIR/model.pt) or shipped id")
    p.add_argument("--format", default="onnx", help="onnx (needs the [deploy] extra) | torchscript")
    p.add_argument("--out", help="the exported file (default: beside the checkpoint, e.g. RUN_DIR/model.onnx)")
    p.add_argument("--data", help="its data set (default: the one the checkpoint records)")
    p.add_argument("--data-dir")
    p.add_argument("--check-images", type=int, default=256, help="test images the outputs are compared on")
    p.add_argument("--trust-pickle", action="store_true", help="load the file with full pickle (trusted files only)")


def _cmd_export(args) -> int:
    from ..deploy.export import ExportRequest, export

    export(ExportRequest(args.model, args.format, args.out, args.data, args.data_dir, args.trust_pickle,
                         args.check_images), echo=print)
    return 0


def _latency_parser(sub) -> None:
    p = sub.add_parser("latency", help="measured latency of a pruned network against its base (PyTorch, onnxruntime)",
                       description="Time a network and its base interleaved (warm-up, median and IQR of the calls) "
                                   "at batch 1 and a larger batch, in PyTorch and onnxruntime, whole and per layer.")
    p.add_argument("model", help="checkpoint .pt (e.g. RUN_DIR/model.pt) or shipped id")
    p.add_argument("--base", help="the network to compare with (default: the base of MODEL's run, if any)")
    p.add_argument("--batch-sizes", default="1,64")
    p.add_argument("--runtimes", default="torch,onnxruntime", help="torch | onnxruntime, comma-separated")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, help="threads of both runtimes (default: torch's)")
    p.add_argument("--no-per-layer", dest="per_layer", action="store_false", help="skip the per-layer table")
    p.add_argument("--no-floor", dest="floor", action="store_false",
                   help="skip timing the floor network (every group cut to one channel) and the quotient ceiling")
    p.add_argument("--out", help="also write the measurements as JSON here")
    p.add_argument("--trust-pickle", action="store_true")


def _cmd_latency(args) -> int:
    from ..deploy.latency_command import LatencyRequest, run_latency

    run_latency(LatencyRequest(args.model, args.base, args.batch_sizes, args.runtimes, args.repeats, args.warmup,
                               args.threads, args.per_layer, args.out, args.trust_pickle, args.floor), echo=print)
    return 0

