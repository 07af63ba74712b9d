"""Occlusion: the paper's three maps, Captum's per-pixel attribution, batching and fills."""

from __future__ import annotations

import warnings

import pytest
import torch
from photos import small_inputs

from convscope.attribution import Occlusion
from convscope.attribution.occlusion import windows_to_pixels
from convscope.targets import Channel

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny workloads: no waiting on a busy core


def captum_occlusion(net, x, target, size, stride, fill):
    from captum.attr import Occlusion as CaptumOcclusion

    probabilities = lambda inputs: net(inputs).softmax(1)  # noqa: E731 - the paper measures probability
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CaptumOcclusion(probabilities).attribute(x, sliding_window_shapes=(x.shape[1], size, size),
                                                        strides=(x.shape[1], stride, stride), baselines=fill,
                                                        target=target, perturbations_per_eval=16)


def test_matches_captum_with_overlapping_windows(tiny_model, lite0):
    for model, x, target, size, stride in ((tiny_model, torch.randn(2, 3, 8, 8), torch.tensor([2, 0]), 4, 2),
                                           (lite0, small_inputs(lite0), torch.tensor([281, 967]), 16, 8)):
        ours = Occlusion(model, size=size, stride=stride, batch_size=7)(x, target)
        theirs = captum_occlusion(model.net, x.clone(), target, size, stride, 0.0)
        assert ours.shape == (2, 1, *x.shape[-2:])
        assert torch.allclose(ours, theirs.sum(1, keepdim=True) / x.shape[1], atol=1e-6)


def test_probability_map_literal(tiny_model):
    # A bright square in the corner of a dark image; "bright" loses probability only when the occluder covers it.
    x = torch.zeros(1, 3, 8, 8)
    x[:, :, :4, :4] = 1.0
    found = Occlusion(tiny_model, size=4, stride=4, fill=0.0).maps(x, "bright")
    net = tiny_model.net
    expected, expected_top = torch.empty(2, 2), torch.empty(2, 2, dtype=torch.long)
    for i in range(2):
        for j in range(2):
            occluded = x.clone()
            occluded[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4] = 0.0
            expected[i, j] = net(occluded).softmax(1)[0, 0]
            expected_top[i, j] = net(occluded).argmax(1)[0]
    assert torch.allclose(found.score[0], expected.detach())
    assert found.drop[0, 0, 0] > 0.05
    assert found.drop[0].flatten()[1:].abs().max() < 1e-6  # occluding the dark part changes nothing
    assert torch.allclose(found.clean_score, net(x).softmax(1)[:, 0].detach())
    assert torch.equal(found.top_class[0], expected_top)


def test_strongest_feature_map_and_top_class_maps(lite0):
    x = small_inputs(lite0)
    occlusion = Occlusion(lite0, size=32, stride=16)
    found = occlusion.maps(x, None, layer="blocks.5")
    assert found.score.shape == found.top_class.shape == found.feature.shape == (2, 3, 3)
    with torch.no_grad():
        from convscope.attribution.base import forward

        output, acts = forward(lite0, x, ["blocks.5"])
    totals = acts["blocks.5"].flatten(2).sum(2)
    assert torch.equal(found.channel, totals.argmax(1))
    assert torch.allclose(found.clean_feature, totals.amax(1))
    assert torch.equal(found.classes, output.argmax(1))  # 'top' is the clean image's top class at every position
    assert (found.top_probability >= found.score - 1e-6).all()
    row, col = 1, 2
    occluded = x[:1].clone()
    occluded[:, :, 16 * row:16 * row + 32, 16 * col:16 * col + 32] = 0.0
    with torch.no_grad():
        out, acts = forward(lite0, occluded, ["blocks.5"])
    assert torch.allclose(found.feature[0, row, col], acts["blocks.5"][0, found.channel[0]].sum(), rtol=1e-4)
    assert found.top_class[0, row, col] == out.argmax(1)[0]


def test_batched_equals_image_by_image_and_progress(tiny_model, capsys):
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    occlusion = Occlusion(tiny_model, size=3, stride=1, batch_size=10, progress=False)
    batched = occlusion.maps(x, [0, 1, 2])
    for b in range(3):
        single = occlusion.maps(x[b:b + 1], b)
        assert torch.allclose(batched.score[b], single.score[0], atol=1e-7)
        assert torch.equal(batched.top_class[b], single.top_class[0])
    assert capsys.readouterr().err == ""


def test_fills_and_targets(tiny_model):
    x = torch.rand(1, 3, 8, 8)
    grey = Occlusion(tiny_model, size=4, stride=4, fill=0.5).maps(x, 0)
    explicit = Occlusion(tiny_model, size=4, stride=4, fill=torch.tensor([0.5, 0.5, 0.5])).maps(x, 0)
    assert torch.allclose(grey.score, explicit.score)
    channel = Occlusion(tiny_model, size=4, stride=4).maps(x, Channel("conv", 0))
    assert not channel.probability and channel.classes is None
    with pytest.raises(ValueError, match="larger than the 8×8 input"):
        Occlusion(tiny_model, size=9)(x, 0)
    with pytest.raises(ValueError, match="unknown occluder fill"):
        Occlusion(tiny_model, size=4, fill="black")(x, 0)
    with pytest.raises(ValueError, match="at least 1"):
        Occlusion(tiny_model, size=0)


def test_every_pixel_is_covered_by_a_whole_occluder(tiny_model):
    rows, cols = Occlusion(tiny_model, size=3, stride=2).positions(8, 9)
    assert rows.tolist() == [0, 2, 4, 5] and cols.tolist() == [0, 2, 4, 6]
    pixels = Occlusion(tiny_model, size=3, stride=2)(torch.rand(1, 3, 8, 8), 0)
    assert pixels.shape == (1, 1, 8, 8)


def test_windows_to_pixels_averages_the_covering_windows():
    values = torch.tensor([[[1.0, 3.0]]])  # one row of two 2×2 windows, at columns 0 and 1 of a 2×3 image
    pixels = windows_to_pixels(values, torch.tensor([0]), torch.tensor([0, 1]), 2, (2, 3))
    assert pixels[0, 0].tolist() == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
