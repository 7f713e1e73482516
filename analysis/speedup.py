"""Real speed-up: latency of the base network and of pruned copies, against their MACs ratio.

For each MACs target the shipped model is cut in one round (no fine-tuning: latency does not
depend on the weights' values) and timed with ``torch.inference_mode`` in eval mode: CPU at batch 1
and 64, contiguous and channels_last, eager and ``torch.compile``; GPU at batch 256 when CUDA is
present. The median of ``--repeats`` timed calls after warm-up is reported, with the MACs ratio,
the measured latency ratio and ``speedup_quotient = (base/pruned latency) / (base/pruned MACs)``
(1.0: the speed-up the MACs promise; issue target >= 0.85). Each target is cut twice: with
free channel counts and with ``--round-to 8`` (every layer keeps a multiple of 8 channels).

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


def timed_calls(model, batch: torch.Tensor, calls: int, device: str) -> list[float]:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(calls):
            start = time.perf_counter()
            model(batch)
            sync()
            times.append(time.perf_counter() - start)
    return times


def prepared(model, layout: str, compiled: bool, device: str):
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    net = model.to(device).to(memory_format=memory_format).eval()
    return torch.compile(net) if compiled else net


def measure(models: dict, settings: list[tuple[str, int]], image: tuple, repeats: int, compile_too: bool,
            blocks: int = 5) -> dict:
    """Median seconds per call of every model in every setting. The models are timed in
    interleaved blocks (base, pruned, base, ...) so that a slow spell of a shared machine hits
    all of them alike; a failure (e.g. torch.compile without a C++ compiler) is recorded."""
    out = {name: {} for name in models}
    for device, batch in settings:
        for layout in ("contiguous", "channels_last"):
            for compiled in (False, True) if compile_too else (False,):
                key = f"{device} batch {batch}, {layout}, {'compiled' if compiled else 'eager'}"
                torch._dynamo.reset()  # the networks share forward code: compile each afresh
                memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                x = torch.randn(batch, *image, device=device).to(memory_format=memory_format)
                try:
                    nets = {name: prepared(m, layout, compiled, device) for name, m in models.items()}
                    for net in nets.values():  # warm-up (and compilation)
                        timed_calls(net, x, max(3, repeats // 5), device)
                    times = {name: [] for name in nets}
                    for _ in range(blocks):
                        for name, net in nets.items():
                            times[name] += timed_calls(net, x, max(1, repeats // blocks), device)
                    for name in models:
                        out[name][key] = statistics.median(times[name])
                except Exception as exc:
                    for name in models:
                        out[name][key] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-fashion-mnist")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--targets", default="0.5,0.2")
    parser.add_argument("--criterion", default="l1", help="which channels go hardly changes latency")
    parser.add_argument("--round-to", default="1,8", help="channel multiples to compare (1: none)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small model, few repeats, eager only (CI smoke)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.quick:
        args.model, args.data, args.targets = "smallcnn-mnist5k", "mnist5k", "0.5"
        args.repeats, args.no_compile = 3, True
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
    models, facts = {"base": base}, {"base": {"target": 1.0, "round_to": None, "macs": base_macs}}
    for target in [float(t) for t in args.targets.split(",")]:
        for round_to in [int(k) for k in args.round_to.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                run_pruning(PruneConfig(model=args.model, data=args.data, criterion=args.criterion,
                                        target_macs=target, round_to=round_to, rounds=1, epochs=0, train_subset=512,
                                        test_subset=256, out=f"{tmp}/run", progress=False, report=False,
                                        device="cpu"))
                pruned = load_checkpoint(f"{tmp}/run/model.pt")[0].eval()
            name = f"target {target}, round-to {round_to}"
            models[name] = pruned
            macs = count_macs_params(pruned, data.test_x[:1])[0]
            facts[name] = {"target": target, "round_to": round_to, "macs": macs,
                           "conv_widths": [m.out_channels for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)]}
    timings = measure(models, settings, image, args.repeats, compile_too)
    rows = []
    for name, row in facts.items():
        ratios = {}
        for key, seconds in timings[name].items():
            base_seconds = timings["base"][key]
            if name != "base" and isinstance(seconds, float) and isinstance(base_seconds, float):
                ratios[key] = {"macs_ratio": row["macs"] / base_macs, "latency_ratio": seconds / base_seconds,
                               "speedup_quotient": (base_seconds / seconds) / (base_macs / row["macs"])}
        rows.append({"name": name, **row, "latency": timings[name], "ratios": ratios})
        if ratios:
            print(f"{name}: MACs ratio {row['macs'] / base_macs:.3f}; "
                  + "; ".join(f"{k}: {v['latency_ratio']:.3f} ({v['speedup_quotient']:.2f})"
                              for k, v in ratios.items()))
    result = {"script": "analysis/speedup.py", "arguments": vars(args), "model": args.model, "rows": rows,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "not measured: no CUDA device",
              "torch_threads": torch.get_num_threads(), "machine": platform.machine(), "commit": commit(),
              **versions()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
