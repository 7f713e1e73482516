"""User model factories for the bad-input tests (``--model odd_models:NAME``)."""
import torch
from torch import nn


def no_convolution(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """Only a classifier: nothing to prune."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))


class ChannelMixer(nn.Module):
    """Mixes channels with a square matrix through einsum, which torch-pruning cannot follow."""

    def __init__(self, channels: int):
        super().__init__()
        self.mix = nn.Parameter(torch.eye(channels) + 0.01)

    def forward(self, x):
        return torch.einsum("bchw,cd->bdhw", x, self.mix)


def with_channel_mixer(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), ChannelMixer(8),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))
