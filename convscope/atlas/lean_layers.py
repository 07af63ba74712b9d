"""Exact stand-ins for two kinds of layer in the atlas's private copy of a model, each sparing every optimisation
step a full copy of an activation map:

- An in-place activation whose gradient is computed from its *input* (ReLU6 and every hard tanh, SiLU, hard swish,
  hard sigmoid, Mish): autograd must keep that input, so it copies the map before overwriting it — the in-place
  layer costs a copy more than the plain one and saves no memory. The copy runs them out of place.
- TensorFlow's "same" padding (timm's ``Conv2dSame``, before each strided convolution of the TensorFlow-ported
  EfficientNets): a padded copy of the input at every call, and a cropped copy of its gradient. Where TensorFlow pads
  both sides alike, the convolution pads by itself; where it pads one pixel more after than before (an even size
  under a stride of 2), the kernel is grown by a zero row (or column) in front and both sides are padded by the
  larger amount: each output sums the same products, and no map is copied.

The outputs are those of the original layers bit for bit on EfficientNet-Lite0, the input gradients up to float32
rounding (``tests/test_atlas.py`` compares them); chosen layers keep their names.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from timm.layers import Conv2dSame
from torch import Tensor, nn

COPYING_IN_PLACE = (nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Mish)  # nn.ReLU6 is a Hardtanh


class SamePaddingConv(nn.Conv2d):
    """timm's :class:`~timm.layers.Conv2dSame` (dilation 1) padding inside the convolution instead of copying."""

    @classmethod
    def replacing(cls, conv: Conv2dSame) -> SamePaddingConv:
        (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
        new = cls(conv.in_channels, conv.out_channels, (kh, kw), (sh, sw), 0, 1, conv.groups, conv.bias is not None,
                  device=conv.weight.device, dtype=conv.weight.dtype)
        new.weight, new.bias = conv.weight, conv.bias
        return new

    def forward(self, input: Tensor) -> Tensor:
        weight, padding = same_padding(self, input)
        return F.conv2d(input, weight, self.bias, self.stride, padding, 1, self.groups)


def same_padding(conv: nn.Conv2d, input: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """The weight (grown where needed) and symmetric padding with which ``conv`` computes TensorFlow's "same"
    convolution of ``input``."""
    padding, grown = [], []
    for size, kernel, stride in zip(input.shape[-2:], conv.kernel_size, conv.stride, strict=True):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)  # TensorFlow's "same"
        padding.append(total - total // 2)
        grown.append(total % 2)  # one more after than before: a zero row (column) in front of the kernel
    weight = F.pad(conv.weight, (grown[1], 0, grown[0], 0)) if any(grown) else conv.weight
    return weight, tuple(padding)


def make_lean(net: nn.Module) -> None:
    """Replace, in place, the layers of ``net`` (a private copy) that copy maps needlessly by their exact stand-ins."""
    for module in net.modules():
        if isinstance(module, COPYING_IN_PLACE) and getattr(module, "inplace", False):
            module.inplace = False
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is Conv2dSame and child.dilation == (1, 1) and child.padding_mode == "zeros":
                setattr(parent, name, SamePaddingConv.replacing(child))
