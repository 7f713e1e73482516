"""Small networks shared by several test modules (tests/ is on sys.path under pytest)."""
import torch
from torch import nn

from bayesprune.data import ImageData


class Chain(nn.Module):
    """conv(1->4) -> conv(4->6) -> conv(6->2): no activations, so the cost model is exact."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.c3(self.c2(self.c1(x))).mean((2, 3))


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(x)))
        return self.fc(x.mean((2, 3)))


class Residual(nn.Module):
    """conv-bn -> (+ shortcut conv-bn): the two BatchNorms' channels are coupled (one group)."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.c2, self.b2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = self.b1(self.c1(x))
        return self.fc(torch.relu(h + self.b2(self.c2(h))).mean((2, 3)))


def planted_network(dead_in_first: int = 4, examples: int = 512):
    """Layer 1 has ``dead_in_first`` channels with zero filters and zero BatchNorm (no
    contribution at all); layer 2 is all alive. Labels are drawn from the network's own
    predictive distribution, so the likelihood is informative about every live channel (the more
    so, the more ``examples``)."""
    torch.manual_seed(0)
    net = TwoLayers()
    with torch.no_grad():
        net.fc.weight.mul_(6.0)
        for c in range(dead_in_first):
            net.c1.weight[c] = 0.0
            net.b1.weight[c] = net.b1.bias[c] = 0.0
    net.eval()
    x = torch.randn(examples, 1, 8, 8)
    with torch.no_grad():
        y = torch.distributions.Categorical(logits=net(x)).sample()
    data = ImageData("planted", x, y, x[:64], y[:64], 3)
    return net, data


def fake_ms(module, _x) -> float:
    """A fake clock: a layer takes (input channels x output channels) ms; a whole network its
    layers' time plus 60 ms for everything else."""
    if isinstance(module, torch.nn.Conv2d):
        return float(module.in_channels * module.out_channels)
    if isinstance(module, torch.nn.Linear):
        return float(module.in_features * module.out_features)
    layers = [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return 60.0 + sum(fake_ms(m, None) for m in layers)
