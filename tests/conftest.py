from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
requires_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed "
                                       "(apt-get install -y dataset-fashion-mnist)")


@pytest.fixture(scope="session")
def mnist5k():
    from bayesprune.data import load_dataset

    return load_dataset("mnist5k")


@pytest.fixture
def tiny_mnist(mnist5k):
    return mnist5k.subset(train=512, test=256)
