"""Architectures by name. Every one takes any input channels, image size and class count."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ..errors import ModelError
from .mobilenetv2 import MobileNetV2
from .resnet_cifar import CifarResNet
from .small_cnn import SmallCNN
from .vgg import VGG, VGG16

ARCHITECTURES = {
    "smallcnn": "4 conv-BN-ReLU layers (32-32-64-64), GAP head: the default for 28x28 data",
    "resnet20": "CIFAR ResNet-20 (He et al. 2016), 16/32/64 channels",
    "resnet56": "CIFAR ResNet-56",
    "resnet110": "CIFAR ResNet-110",
    "vgg16": "VGG-16-BN with a global-average-pool head",
    "mobilenetv2": "MobileNetV2, CIFAR form (stride-1 stem)",
}


@dataclass(frozen=True)
class Architecture:
    """What is needed to rebuild a network without pickle: its name, input/output shape and width.

    ``width`` multiplies every hidden layer's channel count of the built-in architectures (1.0 =
    the published network); expansion-before-pruning (:mod:`bayesprune.surgery.expand`) sets it.
    """

    name: str
    in_channels: int
    num_classes: int
    image_size: int
    width: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def scaled(channels: int, width: float) -> int:
    """``channels`` times ``width``, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def build_model(arch: Architecture) -> nn.Module:
    """Instantiate ``arch``: one of :data:`ARCHITECTURES`, ``tv:NAME`` or ``package.module:factory``."""
    name, cin, classes, size, width = arch.name, arch.in_channels, arch.num_classes, arch.image_size, arch.width
    if name == "smallcnn":
        return SmallCNN(cin, classes, width=scaled(32, width))
    if name in ("resnet20", "resnet56", "resnet110"):
        return CifarResNet(int(name[len("resnet"):]), cin, classes, base_width=scaled(16, width))
    if name == "vgg16":
        return VGG(cin, classes, size, cfg=[c if c == "M" else scaled(c, width) for c in VGG16])
    if name == "mobilenetv2":
        return MobileNetV2(cin, classes, size, width_mult=width, last_channels=scaled(1280, max(1.0, width)))
    if width != 1.0:
        raise ModelError(f"width {width} applies to the built-in architectures only, not {name!r}")
    from .external import factory_model, torchvision_model

    if name.startswith("tv:"):
        return torchvision_model(name[3:], cin, classes)
    if ":" in name:
        return factory_model(name, cin, classes, size)
    raise ModelError(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}, a shipped "
                     "pretrained id (bayesprune models), tv:NAME, package.module:factory or a .pt checkpoint")


__all__ = ["ARCHITECTURES", "Architecture", "build_model"]
