"""Dead means never positive after a rectifier: a layer without one has no dead channels, one picture makes
no channel dead, and a layer without positions is drawn as one value per channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convscope.inspection.activations import activation_maps
from convscope.models import Model, Preprocess
from convscope.scan.dead_filters import dead_filters
from convscope.scan.statistics import ChannelStatistics

pytestmark = pytest.mark.usefixtures("one_thread")


class Scanned:
    """What dead_filters reads of a scan: one layer's statistics."""

    def __init__(self, mean: list[float], active: list[float]) -> None:
        c = len(mean)
        self.stats = ChannelStatistics(100, 49, torch.tensor(active), torch.tensor(mean), torch.ones(c),
                                       torch.tensor([max(a, 0.0) for a in active]), torch.zeros(c))

    def check_layer(self, layer):
        return layer

    def statistics(self, layer):
        return self.stats


def test_a_layer_without_a_rectifier_has_no_dead_channels():
    before_relu = dead_filters(Scanned([-0.5, 0.3, -0.01], [0.0, 0.9, 0.005]), "conv3")
    assert not before_relu.rectified and before_relu.channels == [] and before_relu.listed == [0, 2]
    assert "no channel is dead" in before_relu.lines()[0] and "none dead" in before_relu.summary
    after_relu = dead_filters(Scanned([0.0, 0.3, 0.001], [0.0, 0.9, 0.005]), "relu3")
    assert after_relu.rectified and after_relu.channels == [0, 2] and "2 of 3 channels dead" in after_relu.lines()[0]
    before_relu.picture()  # draws


def vector_model() -> Model:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 3))
    return Model(net, preprocess=Preprocess(resize=None, crop=2, mean=(0, 0, 0), std=(1, 1, 1)), name="vector")


def test_one_picture_calls_no_channel_dead_and_a_1x1_layer_is_drawn_as_bars():
    found = activation_maps(vector_model(), torch.rand(3, 2, 2), "2")
    assert found.maps.shape[-2:] == (1, 1) and found.dead.any()
    assert "dead" not in found.summary.replace("dead for every picture", "").replace("dead-filters", "")
    array = np.asarray(found.picture().array).astype(int)
    bars = (np.abs(array - [0x4C, 0x72, 0xB0]).max(-1) <= 2).sum()
    zeros = ((array[..., 0] > 170) & (array[..., 1] < 120) & (array[..., 2] < 120)).sum()  # red ticks
    assert bars > 100 and zeros > 10  # blue bars for the values, red ticks on the axis for the zeros
    linear = activation_maps(vector_model(), torch.rand(3, 2, 2), "1")
    assert not linear.rectified and "none is dead" in linear.summary
