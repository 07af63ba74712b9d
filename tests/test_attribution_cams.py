"""CAM, Grad-CAM, guided Grad-CAM, Grad-CAM++, LayerCAM and Score-CAM against identities and other libraries."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from photos import small_inputs
from torch import nn

from convscope.attribution import CAM, GradCAM, GradCAMPlusPlus, GuidedGradCAM, LayerCAM, ScoreCAM
from convscope.attribution.base import layer_gradient
from convscope.models import Model, Preprocess
from convscope.render.overlay import upsample
from convscope.targets import Channel, ClassScore

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny workloads: no waiting on a busy core


class SmallCNN(nn.Module):
    """conv → ReLU → conv → ReLU → GAP → linear, seeded weights; 4 feature maps at ``features``."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class FlattenHead(nn.Module):
    """A VGG-style head: flatten the feature maps and apply two linear layers (no global average pooling)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.head(self.features(x))


def plain(net: nn.Module) -> Model:
    return Model(net.eval(), preprocess=Preprocess(resize=None, crop=None, mean=(0, 0, 0), std=(1, 1, 1)))


def test_cam_finds_the_pooled_layer_and_equals_grad_cam_times_positions(tiny_model, lite0):
    # CAM = Σ_k w_k A_k; on GAP + linear the Grad-CAM weights are w_k / (h·w): the two agree up to that scale.
    for model, x, target in ((tiny_model, torch.randn(2, 3, 8, 8), [0, 2]), (lite0, small_inputs(lite0), [281, 967])):
        cam = CAM(model)
        maps = cam(x, target)
        layer = cam.head(x).layer
        assert layer == ("pool" if model is tiny_model else "bn2")
        grad_cam = GradCAM(model, layer)(x, target)
        positions = maps.shape[-1] * maps.shape[-2]
        assert torch.allclose(maps, grad_cam * positions, atol=1e-4 * maps.abs().max())


def test_cam_literal_on_the_tiny_net(tiny_model):
    x = torch.zeros(1, 3, 8, 8)
    x[:, :, :4] = 1.0  # bright top half
    maps = CAM(tiny_model)(x, "contrast")  # class 2 reads channel 0 minus channel 1
    with torch.no_grad():
        net = tiny_model.net
        pooled = net.pool(net.relu(net.conv(x)))
    assert torch.allclose(maps[0, 0], pooled[0, 0] - pooled[0, 1])
    assert maps[0, 0, 0].min() > 0 and maps[0, 0, 3].max() < 0  # bright rows count for "contrast", dark against


def test_cam_refuses_networks_without_gap_and_linear_naming_why():
    model = plain(FlattenHead())
    with pytest.raises(ValueError, match="CAM needs a network that ends in global average pooling.*use method "
                                         "'grad_cam'"):
        CAM(model)(torch.randn(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="does not read the average of layer 'features'"):
        CAM(model, layer="features")(torch.randn(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="not an nn.Linear"):
        CAM(model, classifier="features.0")
    with pytest.raises(ValueError, match="CAM explains class scores"):
        CAM(plain(SmallCNN()))(torch.randn(1, 3, 8, 8), Channel("features.3", 0))


def test_grad_cam_matches_captum(tiny_model, lite0):
    from captum.attr import LayerGradCam

    for model, layer, x, target in ((tiny_model, "pool", torch.randn(2, 3, 8, 8), torch.tensor([0, 2])),
                                    (lite0, "bn2", small_inputs(lite0), torch.tensor([281, 967])),
                                    (lite0, "blocks.3", small_inputs(lite0), torch.tensor([281, 967]))):
        ours = GradCAM(model, layer)(x, target)
        theirs = LayerGradCam(model.net, model.layer(layer)).attribute(x.clone(), target=target)
        assert ours.shape == theirs.shape
        assert torch.allclose(ours, theirs, atol=1e-5 * float(theirs.detach().abs().max()))


def test_guided_grad_cam_matches_captum_with_bilinear_upsampling(lite0):
    import copy

    from captum.attr import GuidedGradCam

    relu_net = copy.deepcopy(lite0)  # Captum's guided backprop only knows nn.ReLU
    for module in relu_net.net.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(module, name, nn.ReLU())
    x = small_inputs(relu_net)
    ours = GuidedGradCAM(relu_net, "bn2")(x, [281, 967])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GuidedGradCam(relu_net.net, relu_net.layer("bn2")).attribute(
            x.clone(), target=torch.tensor([281, 967]), interpolate_mode="bilinear")
    assert torch.allclose(ours, theirs, atol=1e-5 * float(theirs.detach().abs().max()))


class GradCAMPlusPlusWithEpsilon(GradCAMPlusPlus):
    """pytorch-grad-cam adds 1e-6 to Grad-CAM++'s denominator, which shrinks α where gradients are tiny."""

    def combine(self, activations, grads):
        squared = grads.pow(2)
        alpha = squared / (2 * squared + activations.sum((2, 3), keepdim=True) * grads.pow(3) + 1e-6)
        alpha = torch.where(grads != 0, alpha, 0)
        return ((alpha * grads.clamp_min(0)).sum((2, 3), keepdim=True) * activations).sum(1, keepdim=True)


@pytest.mark.parametrize("ours, theirs_name", [(GradCAMPlusPlusWithEpsilon, "GradCAMPlusPlus"),
                                                (LayerCAM, "LayerCAM"), (GradCAM, "GradCAM")])
def test_gradient_cams_match_pytorch_grad_cam(lite0, ours, theirs_name):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = small_inputs(lite0, size=96)
    maps = ours(lite0, "blocks.5")(x, [281, 967])
    with getattr(pytorch_grad_cam, theirs_name)(model=lite0.net, target_layers=[lite0.layer("blocks.5")]) as cam:
        theirs = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(281), ClassifierOutputTarget(967)])
    # theirs: ReLU, scaled to [0, 1] at the layer's resolution, resized to the input, scaled to [0, 1] again.
    def scaled(maps):
        low = maps.flatten(1).amin(1).view(-1, 1, 1)
        return (maps - low) / ((maps - low).flatten(1).amax(1).view(-1, 1, 1) + 1e-7)

    mine = scaled(upsample(scaled(maps[:, 0].clamp_min(0)), (96, 96))).numpy()
    assert np.abs(mine - theirs).max() < 1e-4


def test_grad_cam_plus_plus_closed_form_literal():
    activations = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]]]])
    grads = torch.tensor([[[[0.5, -1.0], [0.0, 2.0]]]])
    # Σ A = 4; α = g² / (2g² + 4 g³) at each position, 0 where g = 0
    alpha = torch.tensor([[0.25 / (0.5 + 0.5), 1.0 / (2.0 - 4.0)], [0.0, 4.0 / (8.0 + 32.0)]])
    weight = (alpha * grads[0, 0].clamp_min(0)).sum()
    expected = weight * activations
    assert torch.allclose(GradCAMPlusPlus.weighted(None, activations, grads), expected)
    assert torch.allclose(LayerCAM.weighted(None, activations, grads), grads.clamp_min(0) * activations)


def score_cam_reference(model: Model, x: torch.Tensor, layer: str, classes: list[int]) -> torch.Tensor:
    """Score-CAM written out plainly: one image, one feature map, one forward pass at a time."""
    maps = []
    for b, c in enumerate(classes):
        acts = layer_gradient(model, x[b:b + 1], ClassScore(c), layer).activations[0]
        total = torch.zeros(acts.shape[-2:])
        for k in range(acts.shape[0]):
            if acts[k].max() == acts[k].min():
                continue
            mask = torch.nn.functional.interpolate(acts[k][None, None], size=x.shape[-2:], mode="bilinear")[0, 0]
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            with torch.no_grad():
                weight = model.net(x[b:b + 1] * mask).softmax(1)[0, c]
            total += weight * acts[k]
        maps.append(total)
    return torch.stack(maps)[:, None]


def test_score_cam_matches_a_plain_reference():
    model = plain(SmallCNN())
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = ScoreCAM(model, "features", batch_size=5)(x, [0, 1, 2])
    assert torch.allclose(ours, score_cam_reference(model, x, "features", [0, 1, 2]), atol=1e-6)


def test_score_cam_skips_constant_maps_on_the_embedded_model(lite0):
    x = small_inputs(lite0)[:1]
    acts = layer_gradient(lite0, x, ClassScore(281), "blocks.2.1.bn2").activations  # after a ReLU6
    flat = acts.flatten(2)
    assert (flat.amax(2) == flat.amin(2)).any()
    ours = ScoreCAM(lite0, "blocks.2.1.bn2", batch_size=64)(x, 281)
    reference = score_cam_reference(lite0, x, "blocks.2.1.bn2", [281])
    assert torch.allclose(ours, reference, atol=1e-5 * float(reference.abs().max()))


@pytest.mark.parametrize("method", [CAM, GradCAM, GradCAMPlusPlus, LayerCAM, GuidedGradCAM,
                                    lambda m: ScoreCAM(m, batch_size=3)])
def test_batched_equals_image_by_image(method):
    model = plain(SmallCNN())
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    chosen = method(model)
    batched = chosen(x, [0, 1, 2])
    single = torch.cat([chosen(x[b:b + 1], b) for b in range(3)])
    assert torch.allclose(batched, single, atol=1e-6)


def test_default_layer_is_the_last_feature_map(lite0, tiny_model):
    x = small_inputs(lite0)
    assert GradCAM(lite0).layer(x) == "bn2"
    assert GradCAM(tiny_model).layer(torch.randn(1, 3, 8, 8)) == "pool"
    with pytest.raises(ValueError, match="unknown layer 'bn3'"):
        GradCAM(lite0, "bn3")


def test_layer_methods_explain_channels_too():
    model = plain(SmallCNN())
    x = torch.randn(2, 3, 8, 8)
    maps = GradCAM(model, "features.2")(x, Channel("features.4", 1))
    assert maps.shape == (2, 1, 4, 4) and maps.abs().max() > 0
    assert ScoreCAM(model, "features.2")(x, Channel("features.4", 1)).shape == (2, 1, 4, 4)
