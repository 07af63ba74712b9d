"""GradientSHAP against Captum's GradientShap given the same draws (its numpy reference choice and path points and
its torch.normal noise replaced by convscope's seeded draws), and its summation in expectation."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for, wrap

from convscope.attribution import GradientShap
from convscope.attribution.deep_lift_shap import reference_images
from convscope.attribution.smooth_grad import NoiseSamples

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = torch.tensor([3, 7])


def resnet18_float64():
    model = copy.deepcopy(ARCHITECTURES["resnet18"][0]())
    return wrap(model.net.double(), "resnet18_float64")


@pytest.mark.parametrize("name, sigma", [("relu_cnn", 0.2), ("resnet18", 0.0), ("vit", 0.2), ("resnet18_float64", 0.2)])
def test_gradient_shap_equals_captums_given_the_same_draws(monkeypatch, name, sigma):
    # ResNet-18 with input noise in float32 differs from Captum by 2.5e-3: not the draws (the path points are equal
    # bit for bit) but one unit of layer3.1's first ReLU that lies within float32 rounding of its kink at one path
    # point (test below); in float64 the two agree to 1e-9.
    from captum.attr import GradientShap as CaptumGradientShap

    model = resnet18_float64() if name == "resnet18_float64" else ARCHITECTURES[name][0]()
    x = inputs_for().to(model.dtype)
    references = 0.5 * torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(3)).to(x.dtype)
    method = GradientShap(model, baseline=references, samples=5, sigma=sigma, seed=6, batch_size=3)
    ours = method(x, CLASSES)
    chosen, alphas = method.draws(4)
    draws = NoiseSamples(x.shape[1:], x, 6)
    noise = torch.stack([draws[s] for s in range(5)])
    copies = x.shape[0] * 5  # Captum's copies are image-major: copy b·n + s
    normal = torch.normal
    monkeypatch.setattr(np.random, "choice", lambda count, size: np.tile(chosen.numpy(), x.shape[0]))
    monkeypatch.setattr(np.random, "uniform", lambda low, high, size: np.tile(alphas.double().numpy(), x.shape[0]))
    monkeypatch.setattr(torch, "normal", lambda mean, std, *a, **k: noise.repeat(x.shape[0], 1, 1, 1) * std
                        if isinstance(std, torch.Tensor) and std.shape[0] == copies else normal(mean, std, *a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CaptumGradientShap(model.net).attribute(x.clone(), baselines=references, n_samples=5, stdevs=sigma,
                                                         target=CLASSES).detach()
    assert_relative(ours, theirs)


def test_gradient_shap_adds_up_in_expectation_and_exactly_on_a_linear_model():
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    method = GradientShap(model, samples=400, references=4, seed=0, batch_size=200)
    references = reference_images(model, None, 4, 0, x)
    ours = method(x, CLASSES)
    with torch.no_grad():
        expected = model.net(x)[torch.arange(2), CLASSES] - model.net(references)[:, CLASSES].mean(0)
    assert torch.allclose(ours.sum((1, 2, 3)), expected, rtol=0.1, atol=0.1 * float(expected.abs().max()))
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, 10))
    model = wrap(linear, "linear")
    ours = GradientShap(model, samples=3, references=2)(x, CLASSES)
    references = reference_images(model, None, 2, 0, x)
    chosen, _ = GradientShap(model, samples=3, references=2).draws(2)
    with torch.no_grad():
        expected = linear(x)[torch.arange(2), CLASSES] - linear(references[chosen])[:, CLASSES].mean(0)
    assert torch.allclose(ours.sum((1, 2, 3)), expected, atol=1e-4)


def test_in_float32_resnet18_differs_from_captum_only_where_a_relu_sits_at_its_kink():
    model = ARCHITECTURES["resnet18"][0]()
    x = inputs_for()
    references = 0.5 * torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(3))
    method = GradientShap(model, baseline=references, samples=5, sigma=0.2, seed=6)
    chosen, alphas = method.draws(4)
    draws = NoiseSamples(x.shape[1:], x, 6)
    # the second pass of the test above (batch_size=3): rows 3, 4, 5 are (image 1, sample 1), (0, 2), (1, 2)
    images, samples = torch.tensor([1, 0, 1]), torch.tensor([1, 2, 2])
    noisy = x[images] + 0.2 * torch.stack([draws[int(s)] for s in samples])
    alpha = alphas[samples].view(-1, 1, 1, 1)
    point = alpha * noisy + (1 - alpha) * references[chosen[samples]]
    relu = model.net.layer3[1].relu  # torchvision reuses it: its first call, after bn1

    def before_relu(net, layout):
        seen = []
        handle = net.layer3[1].relu.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
        try:
            with torch.no_grad():
                net(point.to(next(net.parameters()).dtype).contiguous(memory_format=layout))
        finally:
            handle.remove()
        return seen[0].double()

    exact = before_relu(copy.deepcopy(model.net).double(), torch.contiguous_format)
    channels_last = before_relu(model.net, torch.channels_last)  # convscope's layout on a CPU
    plain = before_relu(model.net, torch.contiguous_format)  # Captum's
    flipped = (channels_last > 0) != (exact > 0)
    assert int(flipped.sum()) == 1 and not bool(((plain > 0) != (exact > 0)).any())
    # at the kink: a few units of float32 rounding on either side of 0, among activations of order 1
    assert float(exact[flipped].abs()) < 2e-6 and float(channels_last[flipped].abs()) < 2e-6 < float(exact.abs().max())
    assert relu.inplace  # (why the hook above reads the input before the call)
