import pytest


@pytest.fixture(scope="session")
def mnist5k():
    from bayesprune.data import load_dataset

    return load_dataset("mnist5k")


@pytest.fixture
def tiny_mnist(mnist5k):
    return mnist5k.subset(train=512, test=256)
