"""MobileNetV2 (Sandler et al. 2018) in its CIFAR form: stride-1 stem and first stages.

Stride-2 stages are turned into stride 1 once the feature map would fall below 2x2, so 28x28 and
smaller inputs work. Depthwise convolutions couple their input and output channels; torch-pruning
puts them in the group of the expanding 1x1 convolution before them.
"""
from __future__ import annotations

import torch
from torch import nn

# expansion t, output channels c, repeats n, first stride s  (Sandler et al. 2018, Table 2;
# the second stage's stride is 1 for 32x32 inputs, as in common CIFAR ports)
CONFIG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else [_conv_bn_relu(cin, hidden, 1, 1)]
        layers += [_conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 width_mult: float = 1.0, last_channels: int = 1280):
        super().__init__()
        cin = int(32 * width_mult)
        layers: list[nn.Module] = [_conv_bn_relu(in_channels, cin, 3, 1)]
        size = image_size
        for t, c, n, s in CONFIG:
            cout = int(c * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                if stride == 2 and size < 4:
                    stride = 1
                size = (size + stride - 1) // stride
                layers.append(InvertedResidual(cin, cout, stride, t))
                cin = cout
        layers.append(_conv_bn_relu(cin, last_channels, 1, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
