"""Max pooling through oneDNN while scoring equals PyTorch's own, bit for bit, and is used by the metrics."""

from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis.metrics import axiomatic, common, faithfulness
from convscope.analysis.onednn_pooling import onednn_max_pooling
from tests.metrics_reference import reference_batch

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


@pytest.fixture
def conversions(monkeypatch):
    """How many tensors went to oneDNN."""
    count = [0]
    convert = torch.Tensor.to_mkldnn

    def spy(self, *args, **kwargs):
        count[0] += 1
        return convert(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to_mkldnn", spy)
    return count


@pytest.mark.parametrize("settings", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                      dict(kernel_size=3, stride=2, ceil_mode=True),
                                      dict(kernel_size=(2, 3), stride=(1, 2))])
def test_pooling_through_onednn_equals_pytorch_bit_for_bit(conversions, settings):
    x = torch.randn(3, 5, 17, 19, generator=torch.Generator().manual_seed(0))
    expected = F.max_pool2d(x, **settings)
    with torch.no_grad(), onednn_max_pooling():
        found = [F.max_pool2d(x, **settings), nn.MaxPool2d(**settings)(x)]
    assert conversions[0] == 2
    for f in found:
        assert f.shape == expected.shape and f.is_contiguous() and torch.equal(f, expected)


@pytest.mark.parametrize("bad", [float("nan"), "both infinities"])
def test_nan_goes_through_as_pytorch_passes_it_on(conversions, bad):
    x = torch.rand(2, 3, 8, 8)
    if bad == "both infinities":
        x[0, 0, 0, 0], x[1, 2, 3, 3] = float("inf"), float("-inf")
    else:
        x[0, 1, 2, 2] = bad
    with torch.no_grad(), onednn_max_pooling():
        found = F.max_pool2d(x, 2)
    assert conversions[0] == 0  # oneDNN would drop the NaN: left to PyTorch
    assert torch.equal(found.nan_to_num(7.0), F.max_pool2d(x, 2).nan_to_num(7.0))


def test_calls_oneDNN_cannot_do_exactly_are_left_as_they_are(conversions):
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    with onednn_max_pooling():
        pooled = F.max_pool2d(x, 2)  # a gradient is needed
        pooled.sum().backward()
        with torch.no_grad():
            F.max_pool2d(x, 2, dilation=2), F.max_pool2d(x, 2, return_indices=True)
            F.max_pool2d(x.double(), 2), F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2)
    assert conversions[0] == 0
    assert x.grad is not None and float(x.grad.sum()) == pooled.numel()


def test_the_perturbation_metrics_pool_through_onednn_with_unchanged_results(conversions, monkeypatch):
    model, x, y, a, _ = reference_batch(count=2, side=16)

    def both():
        return [faithfulness.pixel_flipping(model, x, y, a, features_in_step=16),
                axiomatic.non_sensitivity(model, x, y, a, features_in_step=4)]

    found = both()
    assert conversions[0] > 0
    conversions[0] = 0
    monkeypatch.setattr(common, "onednn_max_pooling", nullcontext)  # PyTorch's own pooling
    expected = both()
    assert conversions[0] == 0
    for f, e in zip(found, expected, strict=True):
        assert torch.equal(f, e)
