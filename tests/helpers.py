"""Small networks shared by several test modules (tests/ is on sys.path under pytest)."""
from torch import nn


class Chain(nn.Module):
    """conv(1->4) -> conv(4->6) -> conv(6->2): no activations, so the cost model is exact."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.c3(self.c2(self.c1(x))).mean((2, 3))
