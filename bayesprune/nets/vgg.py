"""VGG-16 with BatchNorm (Simonyan & Zisserman 2015) in its CIFAR form: conv stack + GAP + linear.

As in ThiNet (Luo et al. 2017, sec. 4) the fully connected head is replaced by global average
pooling. A max-pool is skipped where it would shrink the feature map below 1x1, so small inputs
(28x28, 8x8) work.
"""
from __future__ import annotations

import torch
from torch import nn

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, cfg=None):
        super().__init__()
        layers: list[nn.Module] = []
        cin, size = in_channels, image_size
        for item in cfg or VGG16:
            if item == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            layers += [nn.Conv2d(cin, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            cin = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
