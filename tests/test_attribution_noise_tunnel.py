"""NoiseTunnel (SmoothGrad, SmoothGrad², VarGrad around any method) against Captum's NoiseTunnel, given the same
noise: Captum draws it with ``torch.normal``, which the tests replace by convscope's seeded draws."""

from __future__ import annotations

import warnings

import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for

from convscope.attribution import NoiseTunnel, SmoothGrad
from convscope.attribution.smooth_grad import NoiseSamples

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = torch.tensor([3, 7])
SIGMA, SAMPLES, SEED = 0.3, 5, 4


def captum_with_our_noise(monkeypatch, inner, x: torch.Tensor, kind: str, **settings) -> torch.Tensor:
    """Captum's NoiseTunnel around ``inner``, its noise being convscope's: sample s of every image is draw s."""
    from captum.attr import NoiseTunnel as CaptumNoiseTunnel

    draws = NoiseSamples(x.shape[1:], x, SEED)
    ours = torch.stack([draws[s] for s in range(SAMPLES)])
    normal = torch.normal

    def same_noise(mean, std, *args, **kwargs):  # Captum's copies are image-major: copy b·n + s
        if isinstance(std, torch.Tensor) and std.shape[0] == x.shape[0] * SAMPLES:
            return ours.repeat(x.shape[0], 1, 1, 1) * std
        return normal(mean, std, *args, **kwargs)

    monkeypatch.setattr(torch, "normal", same_noise)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = CaptumNoiseTunnel(inner).attribute(x.clone(), nt_type=kind, nt_samples=SAMPLES, stdevs=SIGMA,
                                                  target=CLASSES, **settings)
    monkeypatch.setattr(torch, "normal", normal)
    return maps.detach()


@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "vit"])
def test_input_x_gradient_in_a_noise_tunnel_equals_captums(monkeypatch, name, kind):
    from captum.attr import InputXGradient

    model = ARCHITECTURES[name][0]()
    x = inputs_for()
    ours = NoiseTunnel(model, "input_x_gradient", kind=kind, samples=SAMPLES, sigma=SIGMA, seed=SEED,
                       batch_size=3)(x, CLASSES)
    assert_relative(ours, captum_with_our_noise(monkeypatch, InputXGradient(model.net), x, kind))


@pytest.mark.parametrize("kind", ["smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("name", ["relu_cnn", "resnet18"])
def test_grad_cam_in_a_noise_tunnel_equals_captums(monkeypatch, name, kind):
    from captum.attr import LayerGradCam

    model, layer = ARCHITECTURES[name][0](), ARCHITECTURES[name][1]
    x = inputs_for()
    ours = NoiseTunnel(model, "grad_cam", layer, kind=kind, samples=SAMPLES, sigma=SIGMA, seed=SEED)(x, CLASSES)
    theirs = captum_with_our_noise(monkeypatch, LayerGradCam(model.net, model.layer(layer)), x, kind)
    # VarGrad subtracts two nearly equal float32 means, E[m²] − E[m]²: the order of the sums shows (3.5e-5 on
    # ResNet-18); the means themselves agree to 1e-5 (smoothgrad_sq here, smoothgrad above).
    assert_relative(ours, theirs, 1e-4 if kind == "vargrad" else 1e-5)


def test_integrated_gradients_in_a_noise_tunnel_equals_captums(monkeypatch):
    from captum.attr import IntegratedGradients as CaptumIG

    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    ours = NoiseTunnel(model, "integrated_gradients", kind="smoothgrad_sq", samples=SAMPLES, sigma=SIGMA,
                       seed=SEED).attribute(x, target=CLASSES, n_steps=4, baselines=0.0)
    theirs = captum_with_our_noise(monkeypatch, CaptumIG(model.net), x, "smoothgrad_sq", n_steps=4,
                                   method="riemann_right", baselines=0.0)
    assert_relative(ours, theirs)


def test_around_the_gradient_it_is_smooth_grad_and_repeats_exactly():
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for(3)

    class Gradient(SmoothGrad):  # the plain gradient: SmoothGrad with one noiseless sample
        def __init__(self, model):
            super().__init__(model, samples=1, noise=0.0)

    tunnel = NoiseTunnel(model, Gradient(model), samples=6, noise=0.15, seed=2, batch_size=4)
    assert torch.allclose(tunnel(x, [1, 2, 3]), SmoothGrad(model, samples=6, noise=0.15, seed=2)(x, [1, 2, 3]),
                          atol=1e-9, rtol=1e-6)
    batched = tunnel(x, [1, 2, 3])
    assert torch.equal(batched, tunnel(x, [1, 2, 3]))  # the same seed, the same maps
    single = torch.cat([tunnel(x[b:b + 1], b + 1) for b in range(3)])
    assert torch.allclose(batched, single, atol=1e-9, rtol=1e-6)
    assert not torch.equal(batched, NoiseTunnel(model, Gradient(model), samples=6, noise=0.15, seed=3)(x, [1, 2, 3]))


def test_vargrad_is_the_variance_over_the_noisy_maps():
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for(1)
    settings = {"samples": 40, "noise": 0.2, "seed": 0}
    mean = NoiseTunnel(model, "input_x_gradient", **settings)(x, 3)
    square = NoiseTunnel(model, "input_x_gradient", kind="smoothgrad_sq", **settings)(x, 3)
    variance = NoiseTunnel(model, "input_x_gradient", kind="vargrad", **settings)(x, 3)
    assert torch.allclose(variance, square - mean * mean, atol=1e-6 * float(square.max()))
    assert (variance >= -1e-6 * float(square.max())).all() and variance.max() > 0


def test_noise_tunnel_checks_its_settings():
    model = ARCHITECTURES["relu_cnn"][0]()
    with pytest.raises(ValueError, match="unknown noise tunnel kind 'var'"):
        NoiseTunnel(model, kind="var")
    with pytest.raises(ValueError, match="noise tunnel inside a noise tunnel"):
        NoiseTunnel(model, "noise_tunnel")
    with pytest.raises(ValueError, match="unknown attribution method 'salincy'"):
        NoiseTunnel(model, "salincy")
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        NoiseTunnel(model, samples=0)
    x = inputs_for(1)
    tunnel = NoiseTunnel(model, "saliency", samples=2)
    assert torch.equal(tunnel.attribute(x, target=1, nt_samples=3, nt_type="vargrad", stdevs=0.1),
                       NoiseTunnel(model, "saliency", samples=3, kind="vargrad", sigma=0.1)(x, 1))
