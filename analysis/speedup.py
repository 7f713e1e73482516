"""Real speed-up: latency of the base network and of pruned copies, against their MACs ratio.

For each MACs target the shipped model is cut in one round (no fine-tuning: latency does not
depend on the weights' values) and timed with ``torch.inference_mode`` in eval mode: CPU at batch 1
and 64, contiguous and channels_last, eager and ``torch.compile``; GPU at batch 256 when CUDA is
present. The median of ``--repeats`` timed calls after warm-up is reported, with the MACs ratio,
the measured latency ratio and ``speedup_quotient = (base/pruned latency) / (base/pruned MACs)``
(1.0: the speed-up the MACs promise; issue target >= 0.85).

Writes analysis/results/speedup_<model>.json. Usage: python analysis/speedup.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _common import commit, versions  # analysis/_common.py: the script's folder is on sys.path

RESULTS = Path(__file__).resolve().parent / "results"


def latency(model, batch: torch.Tensor, repeats: int, device: str) -> float:
    """Median seconds per forward call."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(max(3, repeats // 5)):  # warm-up (and compilation)
            model(batch)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def variants(model, shape: tuple, device: str, compile_too: bool):
    """(name, model, input) for eager/compiled x contiguous/channels_last."""
    for layout in ("contiguous", "channels_last"):
        memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = model.to(device).to(memory_format=memory_format).eval()
        x = torch.randn(*shape, device=device).to(memory_format=memory_format)
        yield f"{layout}, eager", net, x
        if compile_too:
            yield f"{layout}, compiled", torch.compile(net), x


def measure(model, settings: list[tuple[str, int]], image: tuple, repeats: int, compile_too: bool) -> dict:
    out = {}
    for device, batch in settings:
        for name, net, x in variants(model, (batch, *image), device, compile_too):
            key = f"{device} batch {batch}, {name}"
            try:
                out[key] = latency(net, x, repeats, device)
            except Exception as exc:  # e.g. torch.compile without a C++ compiler: recorded, not hidden
                out[key] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-fashion-mnist")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--targets", default="0.5,0.2")
    parser.add_argument("--criterion", default="l1", help="which channels go hardly changes latency")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small model, few repeats, eager only (CI smoke)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.quick:
        args.model, args.data, args.targets, args.repeats, args.no_compile = "smallcnn-mnist5k", "mnist5k", "0.5", 3, True
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp()) / "quick.json" if args.quick
                                           else RESULTS / f"speedup_{args.model}.json")
    from bayesprune.checkpoint import load_checkpoint
    from bayesprune.config import PruneConfig
    from bayesprune.groups import count_macs_params
    from bayesprune.pretrained import resolve_model
    from bayesprune.data import load_dataset
    from bayesprune.rounds import run_pruning

    data = load_dataset(args.data).subset(512, 256)
    image = tuple(data.test_x.shape[1:])
    settings = [("cpu", 1), ("cpu", 64)] + ([("cuda", 256)] if torch.cuda.is_available() else [])
    compile_too = not args.no_compile
    base = resolve_model(args.model, data).model.eval()
    base_macs = count_macs_params(base, data.test_x[:1])[0]
    rows = [{"target": 1.0, "macs": base_macs, "latency": measure(base, settings, image, args.repeats, compile_too)}]
    for target in [float(t) for t in args.targets.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            run_pruning(PruneConfig(model=args.model, data=args.data, criterion=args.criterion, target_macs=target,
                                    rounds=1, epochs=0, train_subset=512, test_subset=256, out=f"{tmp}/run",
                                    progress=False, report=False, device="cpu"))
            pruned = load_checkpoint(f"{tmp}/run/model.pt")[0].eval()
        macs = count_macs_params(pruned, data.test_x[:1])[0]
        timings = measure(pruned, settings, image, args.repeats, compile_too)
        ratios = {}
        for key, seconds in timings.items():
            base_seconds = rows[0]["latency"][key]
            if isinstance(seconds, float) and isinstance(base_seconds, float):
                measured = seconds / base_seconds
                ratios[key] = {"macs_ratio": macs / base_macs, "latency_ratio": measured,
                               "speedup_quotient": (base_seconds / seconds) / (base_macs / macs)}
        rows.append({"target": target, "macs": macs, "latency": timings, "ratios": ratios})
        print(f"target {target}: MACs ratio {macs / base_macs:.3f}; "
              + "; ".join(f"{k}: {v['latency_ratio']:.3f} ({v['speedup_quotient']:.2f})" for k, v in ratios.items()))
    result = {"script": "analysis/speedup.py", "arguments": vars(args), "model": args.model, "rows": rows,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "not measured: no CUDA device",
              "torch_threads": torch.get_num_threads(), "machine": platform.machine(), "commit": commit(),
              **versions()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
