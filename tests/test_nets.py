import pytest
import torch

from bayesprune.errors import ModelError
from bayesprune.nets import ARCHITECTURES, Architecture, build_model


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (1, 8)])
def test_every_architecture_takes_any_input(name, channels, size):
    if name in ("resnet110",) and size != 8:
        pytest.skip("depth is irrelevant to input handling; keep the suite fast")
    model = build_model(Architecture(name, channels, 7, size)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)


def test_resnet_depths():
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) and x.kernel_size == (3, 3) for x in m.modules())
    assert convs(build_model(Architecture("resnet20", 3, 10, 32))) == 19  # 6n+1 3x3 convs + fc
    assert convs(build_model(Architecture("resnet56", 3, 10, 32))) == 55


def test_user_factory_and_unknown_names():
    model = build_model(Architecture("torch.nn:Identity", 1, 10, 28))
    assert isinstance(model, torch.nn.Identity)
    with pytest.raises(ModelError, match="unknown model"):
        build_model(Architecture("resnet21", 1, 10, 28))
    with pytest.raises(ModelError, match="cannot import model factory"):
        build_model(Architecture("no_such_pkg.mod:make", 1, 10, 28))
