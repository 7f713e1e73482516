"""Adaptive BatchNorm (Li et al. 2020, EagleEye sec. 3.2): statistics by hand, and a masked cut
scored after it as the physical cut whose statistics were re-estimated alike."""
import numpy as np
import pytest
import torch
from torch import nn

from bayesprune.batchnorm_adaptation import adapt_batchnorm
from bayesprune.criteria.base import Calibration
from bayesprune.gates import ChannelGates
from bayesprune.groups import ChannelGraph
from bayesprune.masked_cuts import MaskedCuts
from bayesprune.surgery import compensate
from helpers import planted_network

CPU = torch.device("cpu")


def _batch(values):
    x = torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1, 1)
    return x, torch.zeros(len(values), dtype=torch.long)


def test_statistics_are_the_average_over_the_batches_and_modes_are_restored():
    norm = nn.BatchNorm2d(1, momentum=0.3)
    model = nn.Sequential(norm, nn.Dropout(0.5)).train()
    model[1].eval()  # a mixed state comes back as it was
    # batch 1: 1, 2, 3 (mean 2, unbiased variance 1); batch 2: 4, 8 (mean 6, unbiased variance 8)
    assert adapt_batchnorm(model, [_batch([1, 2, 3]), _batch([4, 8])]) == 5
    assert norm.running_mean.item() == pytest.approx((2 + 6) / 2)  # each batch weighs alike
    assert norm.running_var.item() == pytest.approx((1 + 8) / 2)
    assert norm.momentum == 0.3 and norm.training and not model[1].training


def test_no_batch_is_refused_before_any_statistic_is_reset():
    norm = nn.BatchNorm2d(1)
    norm.running_mean.fill_(5.0)
    with pytest.raises(ValueError, match="at least one batch"):
        adapt_batchnorm(norm, iter([]))
    assert norm.running_mean.item() == 5.0


@pytest.mark.parametrize("method", ["none", "lsq"])
def test_a_masked_cut_after_adaptation_scores_as_the_adapted_physical_cut(method):
    net, data = planted_network(dead_in_first=0)
    calibration = Calibration(data, CPU, 128, 2)
    masked = MaskedCuts(net, data.test_x[:1], calibration, method, adapt_batchnorm=True)
    kept = np.ones(masked.gates.num_channels, dtype=bool)
    kept[[0, 3, 9, 12, 13]] = False
    accuracy, log_likelihood = masked.measure(kept, data.train_x, data.train_y, CPU)
    physical = planted_network(dead_in_first=0)[0]
    graph = ChannelGraph(physical, data.test_x[:1])
    removal = ChannelGates(graph).removal(kept)
    if method != "none":
        compensate(graph, removal, calibration.batches(), method)
    graph.prune(removal)
    adapt_batchnorm(physical, calibration.batches())
    with torch.no_grad():
        logits = physical.eval()(data.train_x)
    nll = nn.functional.cross_entropy(logits, data.train_y, reduction="none")
    np.testing.assert_allclose(log_likelihood, -nll.double().numpy(), atol=1e-5)
    assert accuracy == pytest.approx((logits.argmax(1) == data.train_y).float().mean().item())
    # the adaptation changed the score (the cut moved the later norms' inputs)
    plain = MaskedCuts(net, data.test_x[:1], calibration, method)
    assert not np.allclose(plain.measure(kept, data.train_x, data.train_y, CPU)[1], log_likelihood, atol=1e-3)
