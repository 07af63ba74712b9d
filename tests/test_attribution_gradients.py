"""Saliency, deconvnet, guided backprop, SmoothGrad and Integrated Gradients against independent references."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from architectures import relu6_seen_by_captum
from torch import nn
from torch.overrides import TorchFunctionMode

from convscope.attribution import Deconvnet, GuidedBackprop, IntegratedGradients, Saliency, SmoothGrad
from convscope.attribution.base import input_gradient
from convscope.targets import ClassScore

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny workloads: no waiting on a busy core


def small_inputs(model, size: int = 64, count: int = 2) -> torch.Tensor:
    """Chelsea and coffee at ``size`` px, normalised for the model (cheap on a CPU)."""
    from convscope.images import load_sample
    from convscope.models import Preprocess

    pre = model.preprocess
    small = Preprocess(resize=size, crop=size, mean=pre.mean, std=pre.std)
    return small([load_sample("chelsea"), load_sample("coffee")][:count])


def captum(attribution, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attribution.attribute(*args, **kwargs)


@pytest.fixture(scope="module")
def lite0_relu(lite0):
    """A copy of EfficientNet-Lite0 with ReLU in place of ReLU6 (Captum's rules only know nn.ReLU)."""
    model = copy.deepcopy(lite0)
    for module in model.net.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(module, name, nn.ReLU())
    return model


@pytest.fixture(scope="module")
def lite0_relu6_hooked(lite0):
    """EfficientNet-Lite0's network unchanged as a function, its ReLU6 modules a subclass of ``nn.ReLU``."""
    return relu6_seen_by_captum(lite0.net)


@pytest.fixture(scope="module")
def lite0_float64(lite0):
    model = copy.deepcopy(lite0)
    model.net.double()
    return model


class _NormCalls(TorchFunctionMode):
    """Counts the batch norms a pass runs."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.count += func is F.batch_norm
        return func(*args, **(kwargs or {}))


def test_folded_gradients_equal_captums_in_float64_and_differ_in_float32_only_by_rounding(lite0, lite0_float64):
    # The gradient methods run Lite0 with its batch norms folded into the convolutions: the same function, so in
    # float64 the maps equal Captum's (unfolded) to 1e-10; in float32 they differ only by rounding, which at 96 px
    # on these photos stays below 1e-5 of the largest value (at 224 px a pre-activation within rounding of a ReLU6's
    # kink can flip a unit: docs/benchmarks.md)
    from captum.attr import InputXGradient as CaptumInputXGradient
    from captum.attr import Saliency as CaptumSaliency

    from convscope.attribution import InputXGradient

    target = torch.tensor([281, 967])
    for model, x, tolerance in ((lite0_float64, small_inputs(lite0, size=96).double(), 1e-10),
                                (lite0, small_inputs(lite0, size=96), 1e-5)):
        Saliency(model)(x, target)  # finds and checks the folds (two passes, one with its 49 norms)
        counted = _NormCalls()
        with counted:
            ours = [Saliency(model)(x, target), InputXGradient(model)(x, target)]
        assert counted.count == 0  # all 49 folded
        theirs = [captum(CaptumSaliency(model.net), x.clone(), target=target, abs=True).amax(1, keepdim=True),
                  captum(CaptumInputXGradient(model.net), x.clone(), target=target)]
        for mine, reference in zip(ours, theirs, strict=True):
            assert torch.allclose(mine, reference, rtol=0, atol=tolerance * float(reference.detach().abs().max()))


def test_saliency_matches_finite_differences(tiny_model):
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = copy.deepcopy(tiny_model.net).double()
    model = copy.copy(tiny_model)
    model.net = net
    grad = input_gradient(model, x, ClassScore(2))
    step = 1e-6
    bumps = torch.eye(x.numel(), dtype=x.dtype).view(-1, *x.shape[1:]) * step
    with torch.no_grad():
        numeric = ((net(x + bumps)[:, 2] - net(x - bumps)[:, 2]) / (2 * step)).view_as(x)
    assert torch.allclose(grad, numeric, atol=1e-7)
    saliency = Saliency(model)(x, 2)
    assert torch.allclose(saliency, numeric.abs().amax(1, keepdim=True), atol=1e-7)


def test_saliency_matches_captum(tiny_model, lite0):
    from captum.attr import Saliency as CaptumSaliency

    for model, x in ((tiny_model, torch.randn(2, 3, 8, 8)), (lite0, small_inputs(lite0))):
        target = torch.tensor([2, 0]) if model is tiny_model else torch.tensor([281, 967])
        ours = Saliency(model)(x, target)
        theirs = captum(CaptumSaliency(model.net), x.clone(), target=target, abs=True).amax(1, keepdim=True)
        assert ours.shape == (2, 1, *x.shape[-2:])
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-7)


def test_guided_backprop_and_deconvnet_match_captum_on_the_embedded_architecture(lite0_relu):
    from captum.attr import Deconvolution
    from captum.attr import GuidedBackprop as CaptumGuided

    x = small_inputs(lite0_relu)
    target = torch.tensor([281, 967])
    for ours, oracle in ((GuidedBackprop(lite0_relu), CaptumGuided), (Deconvnet(lite0_relu), Deconvolution)):
        mine = ours(x, target)
        theirs = captum(oracle(lite0_relu.net), x.clone(), target=target)
        scale = theirs.abs().max()
        assert torch.allclose(mine, theirs, atol=1e-5 * scale), type(ours).__name__


def test_on_relu6_captum_silently_returns_the_plain_gradient_and_convscope_does_not(lite0):
    from captum.attr import GuidedBackprop as CaptumGuided

    x = small_inputs(lite0, count=1)
    plain = input_gradient(lite0, x, ClassScore(281))
    theirs = captum(CaptumGuided(lite0.net), x.clone(), target=281)
    assert torch.allclose(theirs, plain, atol=1e-6 * plain.abs().max())  # Captum's rule only hooks nn.ReLU
    ours = GuidedBackprop(lite0)(x, 281)
    assert not torch.allclose(ours, plain, atol=1e-3 * plain.abs().max())
    # guided backprop only lets positive signals through: the rule changes most pixels
    assert (ours != plain).float().mean() > 0.5


def test_on_relu6_captum_given_the_rectifiers_agrees_with_convscope(lite0, lite0_relu6_hooked):
    # Captum's rule applied at ReLU6 (once it can see them) is convscope's: the positive part of the signal,
    # passed where 0 < x < 6. Evidence that the difference above is Captum's missing hook, not convscope's rule.
    from captum.attr import Deconvolution
    from captum.attr import GuidedBackprop as CaptumGuided

    x = small_inputs(lite0)
    target = torch.tensor([281, 967])
    plain = input_gradient(lite0, x, ClassScore(target))
    for ours, oracle in ((GuidedBackprop(lite0), CaptumGuided), (Deconvnet(lite0), Deconvolution)):
        mine = ours(x, target)
        theirs = captum(oracle(lite0_relu6_hooked), x.clone(), target=target)
        scale = theirs.abs().max()
        assert torch.allclose(mine, theirs, atol=1e-5 * scale), type(ours).__name__
        assert not torch.allclose(theirs, plain, atol=1e-3 * scale)  # the rule ran


def test_deconvnet_on_a_net_without_max_pooling_does_not_depend_on_the_image(lite0):
    # Nothing in the deconvnet's backward pass looks at the forward pass except max-pooling switches;
    # EfficientNet-Lite has none, so the projection of a class is the same for every image.
    x = small_inputs(lite0)
    maps = Deconvnet(lite0)(x, 281)
    assert torch.equal(maps[0], maps[1])
    guided = GuidedBackprop(lite0)(x, 281)
    assert not torch.allclose(guided[0], guided[1])


def test_deconvnet_projection_follows_the_zero_all_other_activations_recipe(tiny_model):
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    net = tiny_model.net
    projected = Deconvnet(tiny_model).project(x, "pool", 1)
    # The same recipe by hand: the signal at the pooled layer is that feature map, all others zero.
    with torch.no_grad():
        pooled = net.pool(net.relu(net.conv(x)))
    signal = torch.zeros_like(pooled)
    signal[:, 1] = pooled[:, 1]
    xi = x.clone().requires_grad_(True)
    from convscope.backward_rules import backward_rules
    from convscope.hooks import inspection_mode

    with inspection_mode(net), backward_rules(net, "deconvnet"):
        out = net.pool(net.relu(net.conv(xi)))
    (reference,) = torch.autograd.grad(out, xi, grad_outputs=signal)
    assert torch.allclose(projected, reference)
    strongest = Deconvnet(tiny_model).project(x, "pool", 1, strongest=True)
    assert (strongest != 0).sum() < (projected != 0).sum()
    with pytest.raises(ValueError, match="channel 5 is out of range"):
        Deconvnet(tiny_model).project(x, "pool", 5)


def test_integrated_gradients_matches_captum_riemann_right(tiny_model, lite0_float64):
    # Lite0 in float64: convscope's passes fold the batch norms (the same function), and in float32 a path point
    # near the black baseline has pre-activations within rounding of ReLU6's kinks (test_folded_gradients_… above)
    from captum.attr import IntegratedGradients as CaptumIG

    for model, x, target in ((tiny_model, torch.randn(2, 3, 8, 8), torch.tensor([2, 1])),
                             (lite0_float64, small_inputs(lite0_float64).double(), torch.tensor([281, 967]))):
        method = IntegratedGradients(model, steps=8, batch_size=5)
        ours = method(x, target)
        baseline = method.baseline_for(x)
        theirs = captum(CaptumIG(model.net), x.clone(), baselines=baseline, target=target, n_steps=8,
                        method="riemann_right")
        assert torch.allclose(ours, theirs, atol=1e-5 * theirs.abs().max())


def test_integrated_gradients_completeness(tiny_model):
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    method = IntegratedGradients(tiny_model, steps=400, baseline=0.5)
    attributions = method(x, 2)
    with torch.no_grad():
        difference = tiny_model.net(x)[:, 2] - tiny_model.net(method.baseline_for(x))[:, 2]
    assert torch.allclose(attributions.sum((1, 2, 3)), difference, atol=2e-3)
    # the black baseline of a model that normalises is the normalised black image
    black = IntegratedGradients(tiny_model).baseline_for(x)
    assert torch.equal(black, torch.zeros_like(x))


def test_smooth_grad_is_the_mean_gradient_over_its_noisy_copies(tiny_model):
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    zero_noise = SmoothGrad(tiny_model, samples=3, noise=0.0)(x, 2)
    assert torch.allclose(zero_noise, input_gradient(tiny_model, x, ClassScore(2)))
    method = SmoothGrad(tiny_model, samples=5, noise=0.2, seed=7, batch_size=3)
    ours = method(x, "top")
    # Reference: the same draws (sample s is the generator's s-th draw), one image and one sample at a time.
    generator = torch.Generator().manual_seed(7)
    draws = [torch.randn(3, 8, 8, generator=generator) for _ in range(5)]
    classes = tiny_model.net(x).argmax(1)
    for b in range(2):
        sigma = 0.2 * (x[b].max() - x[b].min())
        grads = [input_gradient(tiny_model, (x[b] + sigma * d)[None], ClassScore(int(classes[b]))) for d in draws]
        assert torch.allclose(ours[b], torch.stack(grads).mean(0)[0], atol=1e-7)


@pytest.mark.parametrize("method", [Saliency, GuidedBackprop, Deconvnet,
                                    lambda m: SmoothGrad(m, samples=4, batch_size=3),
                                    lambda m: IntegratedGradients(m, steps=5, batch_size=4)])
def test_batched_equals_image_by_image(tiny_model, method):
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    chosen = method(tiny_model)
    batched = chosen(x, [0, 1, 2])
    single = torch.cat([chosen(x[b:b + 1], b) for b in range(3)])
    assert torch.allclose(batched, single, atol=1e-7)
    top = chosen(x, None)
    assert torch.allclose(top[1:2], chosen(x[1:2], "top"), atol=1e-7)


def test_the_user_input_is_not_touched(tiny_model):
    x = torch.randn(2, 3, 8, 8)
    kept = x.clone()
    for method in (Saliency(tiny_model), GuidedBackprop(tiny_model), IntegratedGradients(tiny_model, steps=3)):
        method(x, 1)
    assert torch.equal(x, kept) and not x.requires_grad and x.grad is None


def test_bad_inputs_say_how_to_fix_them(tiny_model):
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        Saliency(tiny_model)(torch.rand(3, 8, 8), 0)
    with pytest.raises(TypeError, match="model.prepare"):
        Saliency(tiny_model)([torch.rand(3, 8, 8)], 0)
    with pytest.raises(ValueError, match="2 class indices were given for a batch of 3"):
        Saliency(tiny_model)(torch.rand(3, 3, 8, 8), [0, 1])
    with pytest.raises(ValueError, match="unknown class"):
        Saliency(tiny_model)(torch.rand(1, 3, 8, 8), "zebra")
    with pytest.raises(ValueError, match="samples must be at least 1"):
        SmoothGrad(tiny_model, samples=0)
    with pytest.raises(ValueError, match="unknown baseline"):
        IntegratedGradients(tiny_model, baseline="white")(torch.rand(1, 3, 8, 8), 0)
