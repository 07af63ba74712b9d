"""Objectives, matching losses and penalties: literal values, algebra, finite differences."""

from __future__ import annotations

import pytest
import torch

from convscope.synthesis import objectives as O
from convscope.synthesis.matching import feature_distance, gram_distance, gram_matrix, normalised_distance, smooth
from convscope.synthesis.objectives import Evaluation
from convscope.synthesis.regularisers import l1, l2, total_variation
from convscope.targets import Channel, ClassScore


def evaluation(images=None, output=None, activations=None, mean=0.0, std=1.0) -> Evaluation:
    images = torch.zeros(2, 3, 2, 2) if images is None else images
    output = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, -1.0]]) if output is None else output
    return Evaluation(images, images, output, activations or {}, torch.full((1, 3, 1, 1), mean),
                      torch.full((1, 3, 1, 1), std))


ACTS = {"layer": torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]],
                               [[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]])}


def test_class_score_and_log_probability_read_the_output():
    e = evaluation()
    assert O.class_score(2)(e).tolist() == [3.0, -1.0]
    assert O.class_score((0, 1))(e).tolist() == [1.0, 0.0]
    expected = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, -1.0]]).log_softmax(1)[:, 2]
    assert torch.allclose(O.class_log_probability(2)(e), expected)


def test_channel_neuron_direction_and_norm_have_literal_values():
    e = evaluation(activations=ACTS)
    assert O.channel("layer", 0)(e).tolist() == [2.5, 0.0]
    assert O.neuron("layer", 1)(e).tolist() == [8.0, 1.0]          # centre of a 2×2 map is (1, 1)
    assert O.neuron("layer", 0, 0, 1)(e).tolist() == [2.0, 0.0]
    assert torch.allclose(O.direction("layer", torch.tensor([3.0, 4.0]))(e), torch.tensor([1.5 + 6.4 / 4, 0.8]))
    assert torch.allclose(O.activation_norm("layer")(e), torch.tensor([0.5 * 94 / 8, 0.5 * 4 / 8]))


def test_objective_algebra_matches_the_arithmetic():
    e = evaluation(activations=ACTS)
    a, b = O.channel("layer", 0), O.class_score(1)
    assert torch.allclose((a + b)(e), a(e) + b(e))
    assert torch.allclose((a - 2 * b)(e), a(e) - 2 * b(e))
    assert torch.allclose((a * b)(e), a(e) * b(e))
    assert torch.allclose((-a / 4)(e), -a(e) / 4)
    assert torch.allclose((1 - a)(e), 1 - a(e))
    assert (a + b).layers == ("layer",)
    assert a.on(1)(e).tolist() == [0.0, 0.0] and b.on(0)(e).tolist() == [2.0, 0.0]


def test_targets_become_objectives():
    e = evaluation(activations=ACTS)
    assert torch.equal(O.as_objective(ClassScore(2))(e), O.class_score(2)(e))
    assert torch.equal(O.as_objective(Channel("layer", 0))(e), O.channel("layer", 0)(e))
    assert O.as_objective(Channel("layer", 0)).layers == ("layer",)


def test_bad_objectives_say_how_to_fix_them():
    e = evaluation(activations=ACTS)
    with pytest.raises(ValueError, match="out of range"):
        O.channel("layer", 5)(e)
    with pytest.raises(ValueError, match="out of range"):
        O.class_score(7)(e)
    with pytest.raises(ValueError, match="one value per image"):
        O.Objective(lambda ev: torch.zeros(3))(e)
    with pytest.raises(TypeError, match="channel must be an int"):
        O.channel("layer", 1.5)
    with pytest.raises(TypeError, match="cannot use"):
        O.as_objective("tabby")
    with pytest.raises(ValueError, match="no output"):
        O.channel("missing", 0)(e)


def test_gram_matrix_and_distances_are_literal():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    assert gram_matrix(features)[0].tolist() == [[2.5, 5.5], [5.5, 12.5]]
    reference = torch.tensor([[0.0, 2.0]]).view(1, 2, 1, 1)
    probe = torch.tensor([[1.0, 2.0]]).view(1, 2, 1, 1)
    assert normalised_distance(probe, reference).tolist() == [0.25]
    e = evaluation(images=torch.zeros(1, 3, 2, 2), output=torch.zeros(1, 3), activations={"f": probe})
    assert feature_distance("f", reference[0])(e).tolist() == [0.25]
    goal = gram_matrix(reference)[0]                                # [[0, 0], [0, 4]]
    assert gram_distance("f", goal)(e).tolist() == [pytest.approx((1 + 2 * 2 ** 2) / 16)]


def test_softmax_smoothings_are_scaled_distributions():
    acts = torch.randn(2, 4, 3, 5)
    whole, spatial, channel = smooth(acts, "softmax"), smooth(acts, "spatial"), smooth(acts, "channel")
    assert torch.allclose(whole.flatten(1).mean(1), torch.ones(2))
    assert torch.allclose(spatial.flatten(2).mean(2), torch.ones(2, 4))
    assert torch.allclose(channel.mean(1), torch.ones(2, 3, 5))
    assert torch.allclose(whole, (acts.flatten(1).exp() / acts.flatten(1).exp().mean(1, keepdim=True)).view_as(acts))
    assert smooth(acts, "none") is acts
    with pytest.raises(ValueError, match="unknown smoothing"):
        smooth(acts, "blur")


def test_l2_l1_and_total_variation_are_literal():
    image = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).expand(1, 3, 2, 2)
    e = evaluation(images=image, output=torch.zeros(1, 3), mean=0.5, std=0.5)
    assert l2()(e).tolist() == [12.0]                      # every centred value is ±1
    assert l1()(e).tolist() == [12.0]
    # one position (0,0) has forward differences +2 and +2 in each of 3 colours (input units): ‖∇‖² = 24
    assert total_variation(2.0)(e).tolist() == [pytest.approx(24.0, rel=1e-6)]
    assert total_variation(1.0)(e).tolist() == [pytest.approx(24.0 ** 0.5, rel=1e-6)]
    with pytest.raises(ValueError, match="beta"):
        total_variation(0)


def test_penalty_gradients_agree_with_finite_differences():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    acts = torch.rand(1, 4, 3, 3, dtype=torch.float64)
    goal = gram_matrix(torch.rand(1, 4, 3, 3, dtype=torch.float64))[0]
    mean, std = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64), torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)

    def penalties(x):
        e = Evaluation(x, x, torch.zeros(1, 2, dtype=torch.float64), {"f": acts * x.mean()}, mean, std)
        return total_variation(1.5)(e) + 0.1 * gram_distance("f", goal, smoothing="softmax")(e) + 1e-3 * l2()(e)

    assert torch.autograd.gradcheck(penalties, (image,), eps=1e-6, atol=1e-5)
