"""Input × Gradient against Captum on a ReLU CNN, ResNet-18 and a ViT (random weights)."""

from __future__ import annotations

import warnings

import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for

from convscope.attribution import InputXGradient
from convscope.attribution.base import input_gradient
from convscope.targets import ClassScore

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "vit"])
def test_input_x_gradient_matches_captum(name):
    from captum.attr import InputXGradient as CaptumInputXGradient

    model = ARCHITECTURES[name][0]()
    x, target = inputs_for(), torch.tensor([3, 7])
    ours = InputXGradient(model)(x, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CaptumInputXGradient(model.net).attribute(x.clone(), target=target)
    assert_relative(ours, theirs.detach())


def test_input_x_gradient_is_the_input_times_the_gradient_and_sums_to_the_score_without_biases():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 3, bias=False))
    from convscope.models import Model, Preprocess

    model = Model(net.eval(), preprocess=Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net.double()
    maps = InputXGradient(model)(x, 1)
    assert torch.equal(maps, x * input_gradient(model, x, ClassScore(1)))
    with torch.no_grad():
        assert torch.allclose(maps.sum((1, 2, 3)), net(x)[:, 1])  # a homogeneous ReLU network: Euler's theorem
