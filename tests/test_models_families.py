"""Randomly initialised timm / torchvision families: the default CAM layer, the map's shape, token grids.

Random weights: these tests check structure (which layer, which grid, that every method runs
and refuses what it cannot do), not meaning.
"""

from __future__ import annotations

import pytest
import torch

from convscope.attribution import GradCAM, Occlusion
from convscope.attribution.layers import last_spatial_layer
from convscope.models import Model, Preprocess

pytestmark = pytest.mark.usefixtures("one_thread")

# (maker, name, input side, default layer, grid side); the architectures of docs/models.md at sizes that keep
# the suite quick; the slow case runs each at 224 and adds VGG-11 (slow to build: 133 M parameters)
FAMILIES = [
    ("timm", "vit_small_patch16_224", 64, "blocks.11.norm1", 4),  # made for 64×64 pictures: a 4×4 patch grid
    ("timm", "swin_tiny_patch4_window7_224", 224, "norm", 7),
    ("timm", "convnext_tiny", 64, "stages", 2),
    ("timm", "efficientnet_b0", 64, "bn2", 2),
    ("timm", "mobilenetv3_large_100", 64, "blocks", 2),
    ("timm", "regnety_002", 64, "s4", 2),
    ("torchvision", "resnet50", 64, "layer4", 2),
    ("torchvision", "densenet121", 64, "features", 2),
]


SLOW_ONLY = [("torchvision", "vgg11", 224, "avgpool", 7)]  # adaptive pooling to 7×7 follows the last convolution


def random_model(maker: str, name: str, side: int = 224) -> Model:
    torch.manual_seed(0)
    if maker == "timm":
        import timm

        size = {"img_size": side} if name.startswith("vit") else {}
        net = timm.create_model(name, pretrained=False, **size)
    else:
        import torchvision

        net = torchvision.models.get_model(name, weights=None)
    return Model(net.eval(), name=name, preprocess=Preprocess(resize=side, crop=side))  # the size it was made for


@pytest.mark.parametrize(("maker", "name", "side", "layer", "grid"), FAMILIES, ids=[f[1] for f in FAMILIES])
def test_default_layer_and_grad_cam_shape(maker, name, side, layer, grid):
    model = random_model(maker, name, side)
    x = torch.randn(1, 3, side, side)
    assert last_spatial_layer(model, x) == layer
    method = GradCAM(model)
    maps = method(x, 1)
    assert method.layer(x) == layer
    assert maps.shape == (1, 1, grid, grid) and torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_vit_refuses_attention_parts_and_occlusion_follows_its_tokens():
    model = random_model("timm", "vit_small_patch16_224", 64)
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"blocks.11.attn.k_norm' has no spatial grid.*would work:.*blocks.11.norm1"):
        GradCAM(model, "blocks.11.attn.k_norm")(x, 0)
    found = Occlusion(model, size=32, stride=32).maps(x, 0, layer="blocks.11.norm1")
    assert found.feature.shape == (1, 2, 2) and 0 <= int(found.channel) < 384


@pytest.mark.slow
@pytest.mark.parametrize(("maker", "name", "side", "layer", "grid"), FAMILIES + SLOW_ONLY,
                         ids=[f[1] for f in FAMILIES + SLOW_ONLY])
def test_default_layer_at_224(maker, name, side, layer, grid):
    model = random_model(maker, name)
    x = torch.randn(1, 3, 224, 224)
    assert last_spatial_layer(model, x) == layer
    side = 14 if name.startswith("vit") else 7
    assert GradCAM(model)(x, 1).shape == (1, 1, side, side)


def test_lite0_keeps_bn2(lite0):
    assert last_spatial_layer(lite0, torch.randn(1, 3, 224, 224)) == "bn2"
