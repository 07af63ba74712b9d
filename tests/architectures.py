"""The architectures every new attribution method is compared on: small, random weights, quick on a CPU."""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from convscope.models import Model, Preprocess

SIDE = 64


class ReLU6SeenByCaptum(nn.ReLU):
    """ReLU6 as a subclass of ``nn.ReLU``: Captum's deconvolution and guided backprop hook only ``nn.ReLU`` modules,
    so on ``nn.ReLU6`` they silently give the plain gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 6.0)


def relu6_seen_by_captum(net: nn.Module) -> nn.Module:
    """A copy of ``net``, the same function, with every ``nn.ReLU6`` a :class:`ReLU6SeenByCaptum`."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.ReLU6:
                setattr(module, name, ReLU6SeenByCaptum())
    return net


class ReluCNN(nn.Module):
    """conv → ReLU → max-pool → conv → ReLU → GAP → linear, seeded weights."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def wrap(net: nn.Module, name: str, side: int = SIDE) -> Model:
    return Model(net.eval(), name=name, preprocess=Preprocess(resize=side, crop=side))


@functools.cache  # shared by the tests of a run: do not modify (copy.deepcopy it first)
def relu_cnn() -> Model:
    return wrap(ReluCNN(), "relu_cnn")


@functools.cache  # shared by the tests of a run: do not modify (copy.deepcopy it first)
def resnet18() -> Model:
    import torchvision

    torch.manual_seed(0)
    return wrap(torchvision.models.resnet18(num_classes=10), "resnet18")


@functools.cache  # shared by the tests of a run: do not modify (copy.deepcopy it first)
def vit(side: int = SIDE) -> Model:
    import timm

    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=side, num_classes=10)
    return wrap(net, "vit", side)


@functools.cache  # shared by the tests of a run: do not modify (copy.deepcopy it first)
def convnext() -> Model:
    import timm

    torch.manual_seed(0)
    return wrap(timm.create_model("convnext_atto", pretrained=False, num_classes=10), "convnext")


# name → (maker, a CAM layer with a grid: feature maps, or ViT's patch tokens, the input of its last attention)
ARCHITECTURES = {"relu_cnn": (relu_cnn, "features"), "resnet18": (resnet18, "layer3"),
                 "vit": (vit, "blocks.11.norm1"), "convnext": (convnext, "stages.2")}


def inputs_for(count: int = 2, seed: int = 0) -> torch.Tensor:
    """A normalised-looking batch ``[count,3,64,64]``."""
    return torch.randn(count, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


def vit_tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's reshape_transform for ViT: drop the class token, tokens on their square grid."""
    side = int((tokens.shape[1] - 1) ** 0.5)
    return tokens[:, 1:].reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def assert_relative(ours: torch.Tensor, theirs: torch.Tensor, tolerance: float = 1e-5) -> None:
    """``max |ours − theirs| ≤ tolerance · max |theirs|``, with a message giving the relative error."""
    theirs = torch.as_tensor(theirs).to(ours.dtype)
    assert ours.shape == theirs.shape, (tuple(ours.shape), tuple(theirs.shape))
    scale = float(theirs.abs().max())
    error = float((ours - theirs).abs().max())
    assert scale > 0, "the reference is all zero: the comparison would prove nothing"
    assert error <= tolerance * scale, f"relative error {error / scale:.2e} > {tolerance:.0e}"
