"""``bayesprune train``: train a base network and write it with its model card.

Writes ``<out>.pt`` (checkpoint), ``<out>.json`` (facts read by code, with sha256) and
``<out>.md`` (the model card). Put them in ``models/`` to ship them.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import save_checkpoint
from .data import load_dataset
from .groups import count_macs_params
from .nets import ARCHITECTURES, Architecture, build_model
from .pretrained import sha256_of
from .config import environment
from .errors import DataError, RunDirError
from .runs import atomic_write_json, atomic_write_text, check_writable
from .training import FitConfig, evaluate, fit, resolve_device, seed_everything


@dataclass
class TrainConfig:
    model: str
    data: str
    out: str
    data_dir: str | None = None
    epochs: float = 10
    lr: float = 0.1
    batch_size: int = 128
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    # train on the first N training images only: the rest stay unseen by the network, so that
    # `bayesprune plan` can measure cuts on images it never fit (recorded as `train_images`)
    train_subset: int | None = None

    def validate(self) -> None:
        """Numeric options in range and finite, the output writable: before any data is read."""
        from .config import Bound

        for name, bound in (("epochs", Bound(0)), ("lr", Bound(0, low_open=True)), ("batch_size", Bound(1)),
                            ("weight_decay", Bound(0)), ("seed", Bound(0)),
                            ("train_subset", Bound(1, optional=True))):
            bound.check(name, getattr(self, name))
        if Path(self.out).is_dir():
            raise RunDirError(f"--out {self.out} is a directory; give the checkpoint's file path, e.g. "
                              "models/resnet20-fashion-mnist.pt")
        check_writable(Path(self.out).parent, "--out")


def train_base(config: TrainConfig, echo=lambda _s: None) -> dict:
    config.validate()
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    data = load_dataset(config.data, config.data_dir)
    available = len(data.train_y)
    if config.train_subset is not None:
        if config.train_subset > available:
            raise DataError(f"--train-subset {config.train_subset} is more than the {available} training images of "
                            f"{config.data}; lower it")
        data = data.subset(config.train_subset, None)
    arch = Architecture(config.model, data.in_channels, data.num_classes, data.image_size)
    model = build_model(arch).to(device)
    echo(f"training {config.model} on {data.describe()}")
    start = time.perf_counter()
    fit(model, data, FitConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                               weight_decay=config.weight_decay, warmup_fraction=0.05),
        generator, device, config.progress, desc=f"train {config.model}")
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, data.test_x, data.test_y, device)
    macs, params = count_macs_params(model, data.test_x[:1].to(device))
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = train_command(config)
    facts = {"id": out.stem, "file": out.name, "architecture": arch.to_dict(), "dataset": config.data,
             "split": _split(len(data.train_y), available, len(data.test_y)),
             "train_images": len(data.train_y),
             "test_accuracy": accuracy, "macs": macs, "params": params, "seed": config.seed,
             "epochs": config.epochs, "lr": config.lr, "batch_size": config.batch_size,
             "train_seconds": round(seconds, 1), "device": str(device), "command": command,
             "environment": environment()}
    save_checkpoint(out, model.cpu(), arch, meta={k: facts[k] for k in ("dataset", "test_accuracy", "macs", "params",
                                                                               "train_images")})
    facts["sha256"] = sha256_of(out)
    atomic_write_json(out.with_suffix(".json"), facts)
    atomic_write_text(out.with_suffix(".md"), model_card(facts))
    echo(f"test accuracy {accuracy:.4f}, {macs / 1e6:.2f} M MACs, {params / 1e3:.1f} k params, "
         f"{seconds:.0f} s -> {out}")
    return facts


def train_command(config: TrainConfig) -> str:
    """The ``bayesprune train`` command that reproduces ``config`` (whether it came from the command line
    or from a script)."""
    args = ["--model", config.model, "--data", config.data, "--epochs", f"{config.epochs:g}", "--lr",
            f"{config.lr:g}", "--batch-size", str(config.batch_size), "--seed", str(config.seed), "--device",
            config.device]
    args += ["--data-dir", config.data_dir] if config.data_dir else []
    args += ["--train-subset", str(config.train_subset)] if config.train_subset is not None else []
    return "bayesprune train " + " ".join(shlex.quote(a) for a in args + ["--out", config.out])


def _split(trained: int, available: int, test: int) -> str:
    if trained == available:
        return f"{trained} train / {test} test"
    return f"the first {trained} of {available} train (the rest unseen) / {test} test"


def model_card(facts: dict) -> str:
    arch = facts["architecture"]
    env = facts["environment"]
    return f"""# {facts['id']}

| | |
|---|---|
| architecture | `{arch['name']}` ({ARCHITECTURES.get(arch['name'], arch['name'])}) |
| input | {arch['in_channels']} x {arch['image_size']} x {arch['image_size']}, {arch['num_classes']} classes |
| data | `{facts['dataset']}`, {facts['split']} (bayesprune's fixed split) |
| test accuracy | {facts['test_accuracy'] * 100:.2f}% |
| MACs | {facts['macs']:,} (torch-pruning's counter, batch 1) |
| params | {facts['params']:,} |
| training | SGD Nesterov momentum 0.9, lr {facts['lr']} cosine with 5% warm-up, weight decay 5e-4, batch {facts['batch_size']}, {facts['epochs']} epochs, seed {facts['seed']} |
| trained on | {facts['device']}, {facts['train_seconds']} s; torch {env['torch']}, Python {env['python']} |
| sha256 | `{facts['sha256']}` |

Reproduce (CPU results are deterministic for a given torch build; GPU ones are not bit-exact):

```
{facts['command']}
```

Load: `bayesprune run --model {facts['id']}` or
`bayesprune.load_checkpoint("models/{facts['file']}")` (weights_only, no pickle).
"""
