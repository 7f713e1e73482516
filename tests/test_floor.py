"""The floor network and the quotient's Amdahl ceiling (bayesprune/deploy/floor.py)."""
import pytest
import torch

from bayesprune.deploy.floor import Floor, floor_network, quotient_ceiling
from bayesprune.groups import ChannelGraph, count_macs_params
from bayesprune.nets import Architecture, build_model


@pytest.mark.parametrize("name", ["smallcnn", "resnet20"])
def test_latency_quotient_ceiling_by_hand_and_the_floor_network_keeps_one_channel_per_group(name):
    # a floor with no MACs at 0.2 of the latency: 0.2 serial, a cut to half the MACs runs in 0.6
    assert quotient_ceiling(0.5, Floor(0.0, 0.2)) == pytest.approx(0.5 / 0.6)
    # the floor's own MACs are taken out of its latency: (0.28 - 0.1) / 0.9 = 0.2 serial again
    assert quotient_ceiling(0.5, Floor(0.1, 0.28)) == pytest.approx(0.5 / 0.6)
    assert quotient_ceiling(0.2, Floor(0.0, 0.0)) == pytest.approx(1.0)  # nothing serial: MACs are latency
    assert quotient_ceiling(1.0, Floor(0.05, 0.3)) == pytest.approx(1.0)

    model = build_model(Architecture(name, 1, 10, 28)).eval()
    x = torch.randn(1, 1, 28, 28)
    floor = floor_network(model, x)
    assert all(group.size == 1 for group in ChannelGraph(floor, x).groups)
    assert count_macs_params(floor, x)[0] < 0.05 * count_macs_params(model, x)[0]
    assert floor(x).shape == (1, 10)
    assert all(group.size > 1 for group in ChannelGraph(model, x).groups)  # the base is left as it was


def test_speedups_of_a_timed_row_by_hand():
    from bayesprune.deploy.floor import speedups

    row = {"base": {"median_ms": 10.0}, "pruned": {"median_ms": 5.0}, "floor": {"median_ms": 2.0}}
    values = speedups(row, 0.25, 0.0)  # a quarter of the MACs, twice as fast: quotient 2 / 4
    assert values["latency_speedup"] == pytest.approx(2.0) and values["macs_speedup"] == pytest.approx(4.0)
    assert values["quotient"] == pytest.approx(0.5)
    # the floor: 0.2 of the latency and no MACs, 0.2 serial: at best 0.25 / (0.2 + 0.8 x 0.25) = 0.625
    assert values["quotient_ceiling"] == pytest.approx(0.625) and values["floor_latency_ratio"] == pytest.approx(0.2)
    assert "quotient_ceiling" not in speedups(row, 0.25)  # no floor MACs given: no ceiling
