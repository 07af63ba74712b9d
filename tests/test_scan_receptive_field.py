"""Receptive fields: literal numbers, published values, and the support of the input gradient as an oracle."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from convscope.models.fashion import FashionCNN
from convscope.scan import receptive_fields


def test_fashion_cnn_literal_fields() -> None:
    fields = receptive_fields(FashionCNN(), ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "fc7"],
                              torch.zeros(1, 1, 28, 28))
    # (top, left, bottom, right) of position (0, 0), stride, output size
    assert fields["conv1"].box(0, 0, 0) == (-3, -3, 4, 4) and fields["conv1"].stride == (1, 1)
    assert fields["pool1"].box(5, 0, 0) == (-3, -3, 5, 5) and fields["pool1"].stride == (2, 2)
    assert fields["conv2"].size() == (12, 12)
    assert fields["pool2"].size() == (14, 14) and fields["pool2"].stride == (4, 4)
    assert fields["conv3"].box(0, 2, 1) == (-9 + 8, -9 + 4, 13 + 8, 13 + 4)
    assert fields["pool3"].size() == (26, 26) and fields["pool3"].output_size == (3, 3)
    assert fields["fc7"].whole_input and fields["fc7"].box(100, 0, 0) == (0, 0, 28, 28)


def test_published_values() -> None:
    # Araujo et al., Distill 2019: VGG-16 conv5_3 196 px and pool5 212 px, AlexNet pool5 195 px, Inception-v3's
    # last mixed block 1311 px (its widest branch; each concatenated branch keeps its own field);
    # torchvision's ResNet-50 (stride on the 3×3 convolution) reaches 427 px at layer4.
    with torch.device("meta"):
        vgg, resnet, alexnet = torchvision.models.vgg16(), torchvision.models.resnet50(), torchvision.models.alexnet()
        inception = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    assert receptive_fields(alexnet, ["features.12"], torch.zeros(1, 3, 224, 224, device="meta"))[
        "features.12"].size() == (195, 195)
    mixed = receptive_fields(inception.eval(), ["Mixed_7c"], torch.zeros(1, 3, 299, 299, device="meta"))["Mixed_7c"]
    heights = (mixed.bottom - mixed.top).unique().tolist()
    assert max(heights) == 1311 and len(heights) > 1
    example = torch.zeros(1, 3, 224, 224, device="meta")
    vgg_fields = receptive_fields(vgg, ["features.29", "features.30"], example)
    assert vgg_fields["features.29"].size() == (196, 196) and vgg_fields["features.29"].stride == (16, 16)
    assert vgg_fields["features.30"].size() == (212, 212) and vgg_fields["features.30"].stride == (32, 32)
    resnet_fields = receptive_fields(resnet, ["layer1", "layer4", "fc"], example)
    assert resnet_fields["layer1"].size() == (35, 35)
    assert resnet_fields["layer4"].size() == (427, 427) and resnet_fields["layer4"].stride == (32, 32)
    assert resnet_fields["fc"].whole_input


class Branches(nn.Module):
    """Strided, padded, dilated and grouped convolutions, average pooling, a residual sum, a concatenation of
    branches with different fields, constant padding and a channel slice — with tanh, so every dependency
    shows up in the input gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.wide = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
        self.narrow = nn.Conv2d(4, 3, 1)
        self.merge = nn.Conv2d(7, 5, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.stem(x))
        x = self.pool(x)
        wide = torch.tanh(self.wide(x)) + x  # residual
        both = torch.cat([wide, torch.tanh(self.narrow(x))], dim=1)  # branches with different fields
        both = nn.functional.pad(both, (1, 0, 0, 2))
        return self.merge(both)[:, 1:4]


def _gradient_box(net: nn.Module, x: torch.Tensor, layer_output, channel: int, y: int, x_: int):
    x = x.clone().requires_grad_(True)
    out = layer_output(net, x)
    out[0, channel, y, x_].backward()
    support = x.grad[0].abs().sum(0) > 0
    if not support.any():
        return None
    rows, cols = support.any(1).nonzero().flatten(), support.any(0).nonzero().flatten()
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


@pytest.mark.parametrize("layer", ["pool", "wide", "narrow", "merge"])
def test_boxes_match_the_support_of_the_input_gradient(layer: str) -> None:
    torch.manual_seed(0)
    net = Branches().double().eval()
    x = torch.rand(1, 2, 23, 21, dtype=torch.float64)
    field = receptive_fields(net, [layer], x)[layer]

    def layer_output(module, inputs):
        store = {}
        handle = getattr(module, layer).register_forward_hook(lambda m, i, o: store.setdefault("out", o))
        try:
            module(inputs)
        finally:
            handle.remove()
        return store["out"]

    out = layer_output(net, x)
    height, width = out.shape[-2:]
    for channel in range(out.shape[1]):
        for y, x_ in [(0, 0), (height // 2, width // 3), (height - 1, width - 1)]:
            top, left, bottom, right = field.box(channel, y, x_)
            expected = (max(top, 0), max(left, 0), min(bottom, 23), min(right, 21))
            found = _gradient_box(net, x, layer_output, channel, y, x_)
            if found is None and layer == "merge" and (x_ == 0 or y == height - 1):
                continue  # reads only the explicit left / bottom padding: no pixel at all (see the module notes)
            assert found == expected, (layer, channel, y, x_)


def test_max_pool_literal_and_channel_selection() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 5, padding=2), nn.MaxPool2d(3, stride=2, padding=1), nn.ReLU())
    field = receptive_fields(net, ["2"], torch.zeros(1, 1, 16, 16))["2"]
    # conv: [-2, 3); pool 3/2/1 unites input units -1, 0, 1 → [-3, 4); stride 2
    assert field.box(1, 0, 0) == (-3, -3, 4, 4) and field.box(0, 3, 1) == (3, -1, 10, 6)
    assert field.output_size == (8, 8)


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = nn.Linear(4, 4)
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        gate = torch.sigmoid(self.gate(x.mean((2, 3))))
        return self.out(x * gate[:, :, None, None])


def test_squeeze_excitation_sees_the_whole_picture() -> None:
    field = receptive_fields(SqueezeExcite(), ["conv", "out"], torch.zeros(1, 3, 10, 12))
    assert field["conv"].size() == (3, 3) and not field["conv"].whole_input
    assert field["out"].whole_input and field["out"].box(2, 4, 5) == (0, 0, 10, 12)


class Upsampling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 3, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.after = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after(self.up(self.down(x)))


def test_unsupported_operation_is_named_and_the_model_is_left_as_found() -> None:
    net = Upsampling().train()
    fields = receptive_fields(net, ["down"], torch.zeros(1, 3, 8, 8))
    assert fields["down"].size() == (3, 3)
    with pytest.raises(ValueError, match="upsample"):
        receptive_fields(net, ["after"], torch.zeros(1, 3, 8, 8))
    assert net.training and all(not m._forward_hooks for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())


def test_bad_example_and_layer() -> None:
    with pytest.raises(ValueError, match=r"\[1,C,H,W\]"):
        receptive_fields(FashionCNN(), ["conv1"], torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match="conv1"):
        receptive_fields(FashionCNN(), ["conv"], torch.zeros(1, 1, 28, 28))
