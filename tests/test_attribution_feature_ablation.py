"""Feature ablation over a feature mask or SLIC superpixels against Captum's FeatureAblation."""

from __future__ import annotations

import warnings

import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for

from convscope.attribution import FeatureAblation

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = torch.tensor([3, 7])


def blocks(side: int = 64, cell: int = 16) -> torch.Tensor:
    """A mask of square cells ``[1,1,side,side]``."""
    rows = torch.arange(side) // cell
    return (rows[:, None] * (side // cell) + rows[None, :])[None, None]


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "vit"])
def test_feature_ablation_equals_captums(name):
    from captum.attr import FeatureAblation as CaptumFeatureAblation

    model = ARCHITECTURES[name][0]()
    x = inputs_for()
    mask = blocks()
    ours = FeatureAblation(model, feature_mask=mask, batch_size=5)(x, CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CaptumFeatureAblation(model.net).attribute(x.clone(), target=CLASSES, baselines=0.0,
                                                            feature_mask=mask.expand(2, 3, 64, 64),
                                                            perturbations_per_eval=4)
    # Each value is a difference of two float32 scores, whose last bits differ between convscope's channels-last
    # and Captum's NCHW convolutions (1.5e-5 on ResNet-18), as for Ablation-CAM.
    assert_relative(ours.expand_as(theirs), theirs.detach(), 5e-5)


def test_superpixels_are_the_default_and_a_mask_can_come_per_call():
    model = ARCHITECTURES["relu_cnn"][0]()
    from convscope.images import load_sample

    x = model.prepare([load_sample("chelsea"), load_sample("coffee")])
    method = FeatureAblation(model, segments=12)
    mask = method.mask_for(x)
    assert mask.shape == (2, 1, 64, 64) and 4 <= len(torch.unique(mask[0])) <= 30
    assert torch.equal(method(x, CLASSES), FeatureAblation(model, feature_mask=mask)(x, CLASSES))
    assert torch.equal(method.attribute(x, target=CLASSES, feature_mask=mask),
                       FeatureAblation(model, feature_mask=mask)(x, CLASSES))
    with pytest.raises(ValueError, match="feature_mask= is an integer tensor"):
        FeatureAblation(model, feature_mask=torch.zeros(1, 1, 64, 64))


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "vit"])
def test_shapley_value_sampling_equals_captums_given_the_same_orders(monkeypatch, name):
    from captum.attr import ShapleyValueSampling as CaptumShapley

    from convscope.attribution import ShapleyValueSampling

    model = ARCHITECTURES[name][0]()
    x = inputs_for()
    mask = blocks(cell=32)  # 4 segments
    method = ShapleyValueSampling(model, feature_mask=mask, samples=3, seed=2, batch_size=7)
    ours = method(x, CLASSES)
    orders = iter(method.orders(4))
    monkeypatch.setattr(torch, "randperm", lambda count, *args, **kwargs: next(orders))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CaptumShapley(model.net).attribute(x.clone(), target=CLASSES, baselines=0.0, n_samples=3,
                                                    feature_mask=mask.expand(2, 3, 64, 64).contiguous(),
                                                    perturbations_per_eval=4)
    assert_relative(ours.expand_as(theirs), theirs.detach(), 5e-5)  # differences of float32 scores, as above
    with torch.no_grad():
        delta = (model.net(x) - model.net(torch.zeros_like(x)))[torch.arange(2), CLASSES]
    per_segment = torch.stack([ours[:, 0, 0, 0], ours[:, 0, 0, 32], ours[:, 0, 32, 0], ours[:, 0, 32, 32]], 1)
    assert torch.allclose(per_segment.sum(1), delta, rtol=1e-4, atol=1e-6)  # efficiency: they add up exactly
