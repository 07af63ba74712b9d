"""``additional_forward_args=`` (Captum's): more arguments for the model's forward, following the images through
copies, path points and baselines, against Captum on a model whose forward takes them."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for, wrap
from test_attribution_deep_lift import relu_cnn_average_pooled
from test_attribution_feature_ablation import blocks
from torch import nn

from convscope.attribution import (
    DeepLift,
    FeatureAblation,
    IntegratedGradients,
    KernelShap,
    LayerConductance,
    Occlusion,
    Saliency,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = torch.tensor([3, 7])
SHIFT = torch.tensor([0.5, -1.0])  # one per image: a copy of image 1 run with image 0's shift would differ


class Shifted(nn.Module):
    """A network whose forward takes a per-image shift of the input and a scale of the output."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x, shift, scale=1.0):
        return scale * self.base(x + shift[:, None, None, None])


def shifted(base):
    return wrap(Shifted(copy.deepcopy(base.net)), "shifted")


def quiet(run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run().detach()


def test_gradient_path_and_perturbation_methods_equal_captums_with_forward_args():
    import captum.attr as ca

    model = shifted(ARCHITECTURES["relu_cnn"][0]())
    net, x, extra = model.net, inputs_for(), (SHIFT, 2.0)
    ours = Saliency(model).attribute(x, target=CLASSES, additional_forward_args=extra)
    theirs = quiet(lambda: ca.Saliency(net).attribute(x.clone(), target=CLASSES, abs=True,
                                                      additional_forward_args=extra).amax(1, keepdim=True))
    assert_relative(ours, theirs)
    method = IntegratedGradients(model, steps=8, batch_size=5)
    baseline = method.baseline_for(x)
    ours = method.attribute(x, target=CLASSES, additional_forward_args=extra)
    theirs = quiet(lambda: ca.IntegratedGradients(net).attribute(
        x.clone(), baselines=baseline, target=CLASSES, n_steps=8, method="riemann_right",
        additional_forward_args=extra))
    assert_relative(ours, theirs)
    ours = LayerConductance(model, "base.features", steps=6, batch_size=5).attribute(
        x, target=CLASSES, additional_forward_args=extra)
    theirs = quiet(lambda: ca.LayerConductance(net, net.base.features).attribute(
        x.clone(), baselines=baseline, target=CLASSES, n_steps=6, method="riemann_trapezoid",
        additional_forward_args=extra))
    assert_relative(ours, theirs)
    mask = blocks()
    ours = FeatureAblation(model, feature_mask=mask, batch_size=5).attribute(
        x, target=CLASSES, additional_forward_args=extra)
    theirs = quiet(lambda: ca.FeatureAblation(net).attribute(
        x.clone(), target=CLASSES, baselines=0.0, feature_mask=mask.expand(2, 3, 64, 64), perturbations_per_eval=4,
        additional_forward_args=extra))
    assert_relative(ours.expand_as(theirs), theirs, 5e-5)  # differences of float32 scores, as without them
    method = KernelShap(model, feature_mask=mask, samples=40, batch_size=7)
    ours = method.attribute(x, target=CLASSES, additional_forward_args=extra)
    reference = ca.KernelShap(net)
    draws = method.draws(16)

    def copies(inputs, **kwargs):
        for row in draws:
            yield row[None].long()

    reference.perturb_func = copies
    theirs = quiet(lambda: reference.attribute(x.clone(), target=CLASSES, baselines=0.0,
                                               feature_mask=mask.expand(2, 3, 64, 64), n_samples=40,
                                               perturbations_per_eval=4, additional_forward_args=extra))
    assert_relative(ours.expand_as(theirs), theirs, 5e-5)


def test_deep_lift_with_forward_args_equals_captums_and_adds_up():
    import captum.attr as ca

    model = shifted(relu_cnn_average_pooled())
    x = inputs_for()
    ours = DeepLift(model).attribute(x, target=CLASSES, baselines=0.0, additional_forward_args=(SHIFT,))
    theirs = quiet(lambda: ca.DeepLift(model.net).attribute(x.clone(), baselines=0.0, target=CLASSES,
                                                            additional_forward_args=(SHIFT,)))
    assert_relative(ours, theirs)
    with torch.no_grad():
        delta = (model.net(x, SHIFT) - model.net(torch.zeros_like(x), SHIFT))[torch.arange(2), CLASSES]
    assert torch.allclose(ours.sum((1, 2, 3)), delta, rtol=1e-4, atol=1e-6)


def test_the_model_is_left_as_found_and_other_methods_refuse_in_one_line():
    model = shifted(ARCHITECTURES["relu_cnn"][0]())
    x = inputs_for()
    with pytest.raises(ValueError, match=r"occlusion cannot pass additional_forward_args=.*these methods can: .*lime"):
        Occlusion(model).attribute(x, target=CLASSES, additional_forward_args=(SHIFT,))
    with pytest.raises(TypeError):  # the forward's own error, for a missing argument
        Saliency(model).attribute(x, target=CLASSES, additional_forward_args=())
    with pytest.raises(IndexError):  # a target that fails inside the pass: the forward must come back all the same
        Saliency(model).attribute(x, target=lambda output: output[:, 99], additional_forward_args=(SHIFT,))
    assert "forward" not in model.net.__dict__
    assert torch.equal(Saliency(model)(x, CLASSES, additional_forward_args=(SHIFT, 1.0)),
                       Saliency(model).attribute(x, target=CLASSES, additional_forward_args=SHIFT))
