"""Layer Conductance, Internal Influence, Layer Gradient × Activation and Layer DeepLIFT against Captum's layer
methods, their summation properties, and a neuron target against Captum's neuron methods."""

from __future__ import annotations

import warnings

import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for, vit_tokens_to_grid
from test_attribution_deep_lift import MAKERS

from convscope import Neuron
from convscope.attribution import (
    HiResCAM,
    IntegratedGradients,
    InternalInfluence,
    LayerConductance,
    LayerDeepLift,
    LayerGradientXActivation,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = torch.tensor([3, 7])
THREE = ["relu_cnn", "resnet18", "vit"]


def baseline_for(x):
    return 0.1 * torch.randn(1, *x.shape[1:], generator=torch.Generator().manual_seed(9))


def on_grid(name, attributions):
    """Captum's layer attributions in convscope's layout (ViT: the patch tokens on their grid)."""
    return vit_tokens_to_grid(attributions) if name == "vit" else attributions


def captum(kind, net, layer, x, **options):
    import captum.attr as ca

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(ca, kind)(net, layer).attribute(x.clone(), **options).detach()


@pytest.mark.parametrize("name", THREE)
def test_layer_conductance_and_internal_influence_equal_captums(name):
    maker, layer = ARCHITECTURES[name]
    model = maker()
    x = inputs_for()
    baseline = baseline_for(x)
    module = model.net.get_submodule(layer)
    ours = LayerConductance(model, layer, steps=8, baseline=baseline, batch_size=5)(x, CLASSES)
    theirs = captum("LayerConductance", model.net, module, x, baselines=baseline.expand_as(x), target=CLASSES,
                    n_steps=8, method="riemann_trapezoid")
    assert_relative(ours, on_grid(name, theirs))
    with torch.no_grad():
        delta = (model.net(x) - model.net(baseline.expand_as(x)))[torch.arange(2), CLASSES]
    if name != "vit":  # all of the score flows through these layers: the conductances add up to it as steps grow
        many = LayerConductance(model, layer, steps=64, baseline=baseline, batch_size=32)(x, CLASSES)
        assert torch.allclose(many.sum((1, 2, 3)), delta, rtol=0.05, atol=0.05 * float(delta.abs().max()))
    ours = InternalInfluence(model, layer, steps=8, baseline=baseline, batch_size=3)(x, CLASSES)
    theirs = captum("InternalInfluence", model.net, module, x, baselines=baseline.expand_as(x), target=CLASSES,
                    n_steps=8, method="riemann_right")
    assert_relative(ours, on_grid(name, theirs))


@pytest.mark.parametrize("name", THREE)
def test_layer_gradient_x_activation_equals_captums_and_sums_to_hires_cam(name):
    maker, layer = ARCHITECTURES[name]
    model = maker()
    x = inputs_for()
    ours = LayerGradientXActivation(model, layer)(x, CLASSES)
    theirs = captum("LayerGradientXActivation", model.net, model.net.get_submodule(layer), x, target=CLASSES)
    assert_relative(ours, on_grid(name, theirs))
    assert_relative(ours.sum(1, keepdim=True), HiResCAM(model, layer)(x, CLASSES))


LAYERS = {"relu_cnn": "features", "resnet18": "layer3", "mobilenet_v2": "features.14"}


@pytest.mark.parametrize("name", list(MAKERS))
def test_layer_deep_lift_equals_captums_and_adds_up(name):
    model = MAKERS[name]()
    x = inputs_for()
    baseline = baseline_for(x)
    ours = LayerDeepLift(model, LAYERS[name], baseline=baseline)(x, CLASSES)
    theirs = captum("LayerDeepLift", model.net, model.net.get_submodule(LAYERS[name]), x,
                    baselines=baseline.expand_as(x), target=CLASSES)
    assert_relative(ours, theirs)
    with torch.no_grad():
        delta = (model.net(x) - model.net(baseline.expand_as(x)))[torch.arange(2), CLASSES]
    assert torch.allclose(ours.sum((1, 2, 3)), delta, rtol=1e-4, atol=1e-6)


def test_a_rectifier_layer_is_read_after_its_rule():
    model = MAKERS["relu_cnn"]()  # features.4 is the last ReLU: its output's multipliers come from above it
    x = inputs_for()
    ours = LayerDeepLift(model, "features.4").attribute(x, target=CLASSES, baselines=0.0)  # 0 of the normalised input
    theirs = captum("LayerDeepLift", model.net, model.net.features[4], x, baselines=0.0, target=CLASSES)
    assert_relative(ours, theirs)


def test_a_neuron_target_equals_captums_neuron_methods():
    import captum.attr as ca

    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    neuron = Neuron("features.3", 5, 10, 12)
    ours = IntegratedGradients(model, steps=16)(x, neuron)
    baseline = IntegratedGradients(model).baseline_for(x)  # black
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ca.NeuronIntegratedGradients(model.net, model.net.features[3]).attribute(
            x.clone(), (5, 10, 12), baselines=baseline, n_steps=16, method="riemann_right").detach()
    assert_relative(ours, theirs)
    # a neuron of a later layer attributed to an earlier layer: Captum's LayerConductance of that neuron's value
    ours = LayerConductance(model, "features.0", steps=8, baseline=baseline[:1])(x, neuron)

    def neuron_value(inputs):
        return model.net.features[:4](inputs)[:, 5, 10, 12]

    theirs = captum("LayerConductance", neuron_value, model.net.features[0], x, baselines=baseline, n_steps=8,
                    method="riemann_trapezoid")
    assert_relative(ours, theirs)


def test_layer_methods_pick_the_cams_layer_and_show_the_channel_sum():
    from convscope.attribution import GradCAM

    model = ARCHITECTURES["resnet18"][0]()
    x = inputs_for()
    method = LayerGradientXActivation(model)
    assert method.layer(x) == GradCAM(model).layer(x) == "layer4"
    maps = method(x, CLASSES)
    heat = method.heat(maps, (64, 64))
    assert heat.shape == (2, 64, 64)
    assert torch.allclose(heat, torch.nn.functional.interpolate(maps.sum(1, keepdim=True).clamp_min(0), (64, 64),
                                                                 mode="bilinear")[:, 0])
    with pytest.raises(ValueError, match="steps must be"):
        LayerConductance(model, steps=0)
    with pytest.raises(ValueError, match="Layer DeepLIFT has no rule"):
        LayerDeepLift(ARCHITECTURES["vit"][0]())(x, CLASSES)


def test_internal_influence_before_global_average_pooling_is_the_classifiers_weight_everywhere():
    model = ARCHITECTURES["relu_cnn"][0]()  # features (ending in a ReLU) → global average pooling → fc
    x = inputs_for()
    ours = InternalInfluence(model, "features", steps=4)(x, CLASSES)
    expected = model.net.fc.weight[CLASSES].detach()[:, :, None, None].expand_as(ours) / (32 * 32)
    assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-9)  # so its map is flat there: an earlier layer shows more
