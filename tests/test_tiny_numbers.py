"""Hand-computed numbers for TinyNet (see conftest): every view checked against literal values.

On a constant white 8×8 image the first conv channel (+1/27 weights) gives 1 inside, 2/3 on
the edges and 4/9 in the corners (zero padding); the second (−1/27, bias 0.5) is positive
only in the four corners (1/18). After max-pool and global average pool the features are
[1, 1/72], so the scores are [1, 1/72, 1 − 1/72]. On a black image: features [0, 0.5].
"""

from __future__ import annotations

import pytest
import torch

from convscope import activation_maps, layer_statistics, predict
from convscope.inspection import activation_maps_batch

WHITE = torch.ones(3, 8, 8)
BLACK = torch.zeros(3, 8, 8)


def test_scores_on_white_and_black(tiny_model):
    scores = tiny_model(tiny_model.prepare([WHITE, BLACK]))
    expected = torch.tensor([[1.0, 1 / 72, 1 - 1 / 72], [0.0, 0.5, -0.5]])
    torch.testing.assert_close(scores, expected)


def test_activation_maps_match_hand_computation(tiny_model):
    maps = activation_maps(tiny_model, WHITE, "relu")
    conv0 = maps.maps[0]
    assert conv0[3, 3].item() == pytest.approx(1.0)
    assert conv0[0, 3].item() == pytest.approx(2 / 3)
    assert conv0[0, 0].item() == pytest.approx(4 / 9)
    assert maps.zero_fraction.tolist() == pytest.approx([0.0, 60 / 64])
    assert maps.dead.tolist() == [False, False]
    assert maps.maps[1, 0, 0].item() == pytest.approx(1 / 18, abs=1e-6)


def test_dead_channel_is_flagged(tiny_model):
    maps = activation_maps(tiny_model, BLACK, "relu")
    assert maps.dead.tolist() == [True, False]
    assert maps.zero_fraction.tolist() == [1.0, 0.0]
    picture = maps.picture()
    assert picture.array.shape[2] == 3


def test_batched_activation_maps_equal_single(tiny_model):
    together = activation_maps_batch(tiny_model, [WHITE, BLACK, WHITE * 0.3], "pool")
    for picture, batched in zip([WHITE, BLACK, WHITE * 0.3], together, strict=True):
        single = activation_maps(tiny_model, picture, "pool")
        torch.testing.assert_close(batched.maps, single.maps)


def test_predictions_top_k(tiny_model):
    result = predict(tiny_model, [WHITE, BLACK], k=2)
    assert result.names == [["bright", "contrast"], ["dark", "bright"]]
    probabilities = torch.tensor([1.0, 1 / 72, 1 - 1 / 72]).softmax(0)
    assert result.probabilities[0].tolist() == pytest.approx([probabilities[0].item(), probabilities[2].item()])


def test_layer_statistics_literal(tiny_model):
    stats = layer_statistics(tiny_model, WHITE, target="bright")
    rows = {r.layer: r for r in stats.rows}
    assert list(rows) == ["conv", "relu", "pool", "gap", "flatten", "fc"]
    relu = rows["relu"]
    assert (relu.act_min, relu.act_max) == pytest.approx((0.0, 1.0))
    assert relu.act_zero == pytest.approx(60 / 128)
    fc = rows["fc"]
    assert (fc.weight_min, fc.weight_max) == (-1.0, 1.0)
    # d score_bright / d fc.weight = [features, 0, 0] = [[1, 1/72], [0, 0], [0, 0]]
    assert (fc.weight_grad_min, fc.weight_grad_max) == pytest.approx((0.0, 1.0))
    # d score_bright / d gap output = fc.weight[0] = [1, 0]
    assert (rows["gap"].grad_min, rows["gap"].grad_max) == pytest.approx((0.0, 1.0))
    # the gap spreads 1/16 over each pooled position of channel 0
    assert rows["pool"].grad_max == pytest.approx(1 / 16)
    assert "bright" in stats.target_description
    assert stats.picture().array.ndim == 3
