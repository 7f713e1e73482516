"""Evaluation batches (bayesprune.training.evaluation_batch_size): their size is a speed choice only."""
import torch

from bayesprune.nets.small_cnn import SmallCNN
from bayesprune.training import correct_per_image, evaluate, evaluation_batch_size


def test_evaluation_batch_size_changes_no_result():
    assert evaluation_batch_size("cpu") == 128 and evaluation_batch_size(torch.device("cpu")) == 128
    generator = torch.Generator().manual_seed(0)
    model = SmallCNN(width=4).eval()
    x, y = torch.randn(300, 1, 12, 12, generator=generator), torch.randint(0, 10, (300,), generator=generator)
    default = correct_per_image(model, x, y, torch.device("cpu"))
    assert default.shape == (300,)
    for batch_size in (1, 7, 512):
        assert torch.equal(correct_per_image(model, x, y, torch.device("cpu"), batch_size), default)
    assert evaluate(model, x, y, torch.device("cpu")) == int(default.sum()) / 300
