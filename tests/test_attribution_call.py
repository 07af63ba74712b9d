"""The Captum spelling ``method.attribute(inputs, target=...)`` gives the same maps as ``method(inputs, target)``."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from convscope.attribution import METHODS, Attribution, GradCAM, make_method
from convscope.models import Model, Preprocess

OPTIONS = {"occlusion": {"size": 4, "stride": 4}, "smooth_grad": {"samples": 3}, "integrated_gradients": {"steps": 3}}
TARGETS = {"index": 2, "list": [0, 2], "tensor": torch.tensor([1, 0]), "name": "b", "top": None,
           "callable": lambda output: output[:, 1] - output[:, 0]}


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))
    return Model(net, preprocess=Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)),
                 class_names=["a", "b", "c"])


@pytest.mark.parametrize("target", list(TARGETS), ids=list(TARGETS))
@pytest.mark.parametrize("name", list(METHODS))
def test_both_spellings_give_identical_maps(model, name, target):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    method = make_method(name, model, **OPTIONS.get(name, {}))
    goal = TARGETS[target]
    if name in ("cam", "finer_cam") and target == "callable":  # class targets only
        with pytest.raises(ValueError, match="not a class"):
            method.attribute(x, target=goal)
        return
    called, attributed = method(x, goal), method.attribute(x, target=goal)
    assert called.shape[0] == 2 and torch.isfinite(called).all()
    assert torch.equal(called, attributed)


def test_attribute_checks_inputs_and_targets_like_the_call(model):
    method = GradCAM(model)
    with pytest.raises(ValueError, match="batch"):
        method.attribute(torch.rand(3, 8, 8), target=0)
    with pytest.raises(ValueError, match="class"):
        method.attribute(torch.rand(1, 3, 8, 8), target="zebra")


def test_grad_cam_attribute_matches_captum_layer_grad_cam(model):
    from captum.attr import LayerGradCam

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    ours = GradCAM(model, layer="3").attribute(x, target=torch.tensor([2, 1]))
    theirs = LayerGradCam(model.net, model.net[3]).attribute(x, target=torch.tensor([2, 1]))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_method_implements_the_private_call_not_attribute():
    with pytest.raises(TypeError, match="_attribute"):
        class Wrong(Attribution):  # noqa: F841 - defining it is the test
            def attribute(self, inputs: Tensor, target: object = None) -> Tensor:
                return inputs


def test_attribute_takes_captum_setting_names_for_one_call(model):
    from convscope.attribution import IntegratedGradients

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    method = IntegratedGradients(model, steps=3)
    captum_spelling = method.attribute(x, target=1, n_steps=6, baselines=0.0, internal_batch_size=5)
    assert torch.equal(captum_spelling, IntegratedGradients(model, steps=6, baseline="mean", batch_size=5)(x, 1))
    assert torch.equal(method(x, 1, steps=6), IntegratedGradients(model, steps=6)(x, 1))
    assert method.steps == 3  # the method keeps its own settings
    with pytest.raises(TypeError, match=r"grad_cam has no setting 'n_steps'; it takes target=, layer=, reshape="):
        GradCAM(model).attribute(x, target=0, n_steps=4)
    with pytest.raises(ValueError, match="steps must be at least 1"):  # checked as the constructor checks it
        method.attribute(x, target=0, n_steps=0)
