"""Models from outside bayesprune: torchvision by name (``tv:resnet18``) and user factories.

torchvision is imported only here and only when asked for: on CPU-only torch builds its CUDA
wheel fails to import, and bayesprune must work without it.
"""
from __future__ import annotations

import inspect
from importlib import import_module

from torch import nn

from ..errors import ModelError


def torchvision_model(name: str, in_channels: int, num_classes: int) -> nn.Module:
    try:
        import torchvision.models as tvm
    except Exception as exc:  # a CUDA-built torchvision beside CPU torch raises RuntimeError
        raise ModelError(f"tv:{name} needs a working torchvision (pip install 'bayesprune[vision]' with "
                         f"a matching torch); importing it failed: {exc}") from exc
    if in_channels != 3:
        raise ModelError(f"tv:{name} takes 3-channel images, the data has {in_channels}; "
                         "use one of bayesprune's own models for grey-scale data")
    try:
        return tvm.get_model(name, weights=None, num_classes=num_classes)
    except ValueError as exc:
        raise ModelError(f"torchvision has no model {name!r}; see torchvision.models.list_models()") from exc


def factory_model(spec: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Call ``package.module:factory`` with whichever of in_channels/num_classes/image_size it accepts."""
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import model factory {spec!r} ({exc}); give it as package.module:function "
                         "importable from the current environment") from exc
    offered = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    params = inspect.signature(factory).parameters
    accepts_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    model = factory(**{k: v for k, v in offered.items() if accepts_all or k in params})
    if not isinstance(model, nn.Module):
        raise ModelError(f"factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
