"""Convolutions that rectify their own output, in the atlas's private copy of a model: a ReLU or ReLU6 that reads
nothing but a convolution's output is computed by that convolution as it writes the map (oneDNN's post-op,
https://oneapi-src.github.io/oneDNN/dev_guide_attributes_post_ops.html), and its gradient from that same output.

On the CPU the clamp of a separate ReLU6 is a full pass over the map, read and written, as long as the
convolution that made it: on EfficientNet-Lite0 the separate clamps take about a tenth of an optimisation step. The
gradient needs no pre-activation copy either: ``0 < y < 6`` exactly where ``0 < x < 6`` for ``y = clamp(x, 0, 6)``,
so the rectifier's backward reads the output, which is what ``ReLU``'s own backward does too.

The values and gradients are those of the separate layers bit for bit (the same oneDNN convolution and the same
backward kernels; ``tests/test_atlas.py`` compares them). Elsewhere than on a CPU with oneDNN the convolution is
followed by an in-place clamp: still one map fewer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.atlas.lean_layers import SamePaddingConv, same_padding
from convscope.attribution.batch_norm_folding import _swapped, conv_pairs


class RectifiedConv(nn.Conv2d):
    """A convolution (plain, or TensorFlow-padded as :class:`SamePaddingConv`) whose output is clamped to
    ``[low, high]`` as it is computed."""

    same: bool
    low: float
    high: float

    @classmethod
    def replacing(cls, conv: nn.Conv2d, low: float, high: float) -> RectifiedConv:
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        assert not isinstance(conv.padding, str), "only convolutions with numbers for padding are rectified"
        (ph, pw) = conv.padding
        new = cls(conv.in_channels, conv.out_channels, (kh, kw), (sh, sw), (ph, pw), (dh, dw), conv.groups,
                  conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype)
        new.weight, new.bias = conv.weight, conv.bias
        new.same = isinstance(conv, SamePaddingConv)
        new.low, new.high = low, high
        return new

    def forward(self, input: Tensor) -> Tensor:
        weight, padding = same_padding(self, input) if self.same else (self.weight, self.padding)
        return _ConvolutionThenClamp.apply(input, weight, self.bias, self.stride, padding, self.dilation, self.groups,
                                           self.low, self.high)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, clamped to [{self.low}, {self.high}]"


def rectify_convs(net: nn.Module, run: Callable[[], object], kept: set[int]) -> None:
    """Replace, in place, each convolution of ``net`` (a private copy) whose output only a ReLU or hard tanh reads
    (seen in one ``run()``) by a :class:`RectifiedConv`, and that rectifier by an identity; modules whose ids are
    in ``kept``, and modules with hooks, stay."""
    modules = [m for m in net.modules() if id(m) not in kept and not m._forward_hooks and not m._forward_pre_hooks]
    convs = [m for m in modules if isinstance(m, nn.Conv2d) and type(m) in (nn.Conv2d, SamePaddingConv)
             and m.padding_mode == "zeros" and not isinstance(m.padding, str)]
    rectifiers = [m for m in modules if _bounds(m) is not None]
    replacements: dict[int, nn.Module] = {}
    for conv, rectifier in conv_pairs(convs, rectifiers, run):
        bounds = _bounds(rectifier)
        assert bounds is not None, "only rectifiers are paired"
        replacements[id(conv)] = RectifiedConv.replacing(conv, *bounds)
        replacements[id(rectifier)] = nn.Identity()
    _swapped(net, replacements)


def _bounds(module: nn.Module) -> tuple[float, float] | None:
    """The interval a ReLU or hard tanh (ReLU6 among them) clamps to; None for any other module."""
    if type(module) is nn.ReLU:
        return 0.0, math.inf
    if isinstance(module, nn.Hardtanh):
        return float(module.min_val), float(module.max_val)
    return None


class _ConvolutionThenClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, input: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int],
                padding: Sequence[int], dilation: Sequence[int], groups: int, low: float, high: float) -> Tensor:
        output = _convolve_and_clamp(input, weight, bias, stride, padding, dilation, groups, low, high)
        ctx.save_for_backward(input, weight, output)
        ctx.arguments = list(stride), list(padding), list(dilation), groups, low, high
        ctx.bias_size = None if bias is None else [bias.shape[0]]
        return output

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        input, weight, output = ctx.saved_tensors
        stride, padding, dilation, groups, low, high = ctx.arguments
        grad = torch.ops.aten.hardtanh_backward(grad, output, low, high)  # zero where the output is at a bound
        wanted = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1]),
                  bool(ctx.needs_input_grad[2] and ctx.bias_size)]
        inputs, weights, biases = torch.ops.aten.convolution_backward(
            grad, input, weight, ctx.bias_size, stride, padding, dilation, False, [0, 0], groups, wanted)
        return inputs, weights, biases, None, None, None, None, None, None


def _convolve_and_clamp(input: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int],
                        padding: Sequence[int], dilation: Sequence[int], groups: int, low: float, high: float
                        ) -> Tensor:
    if _fusable(input, weight):
        attribute, scalars = ("relu", []) if (low, high) == (0.0, math.inf) else ("hardtanh", [low, high])
        return torch.ops.mkldnn._convolution_pointwise(input, weight, bias, list(padding), list(stride),
                                                       list(dilation), groups, attribute, scalars, "")
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups).clamp_(low, high)


def _fusable(input: Tensor, weight: Tensor) -> bool:
    """Whether oneDNN can compute the convolution with its clamp (a CPU build with it, float32 or bfloat16)."""
    return (input.device.type == "cpu" and torch.backends.mkldnn.is_available()
            and input.dtype in (torch.float32, torch.bfloat16) and weight.dtype == input.dtype
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))
