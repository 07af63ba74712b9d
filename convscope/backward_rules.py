"""Backward rules of the deconvnet and of guided backpropagation, for rectifying activations.

Inside ``with backward_rules(net, "guided"):`` (or ``"deconvnet"``) every rectifier the
forward pass applies computes its ordinary output but sends the gradient back by the
rule. Rectifiers are found where they are *called*, so modules (``nn.ReLU``,
``nn.ReLU6``, ``nn.Hardtanh(0, t)``, ``nn.LeakyReLU``, ``nn.PReLU``, in-place or not,
reused or not, also inside timm's ``BatchNormAct2d``) and functional calls
(``F.relu``, ``torch.relu``, ``x.relu()``, ``F.relu6``, ``F.hardtanh``,
``F.leaky_relu``, ``F.prelu`` and their in-place forms) are all covered.

With ``g`` the gradient arriving at the activation's output, ``x`` its input and
``r`` its rectification (``max(·, 0)``; the negative slope for leaky ReLU / PReLU):

- ``deconvnet`` (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901): the
  rectifier is applied to the backward signal, whatever the forward input was:
  ``g_in = r(g)``.
- ``guided`` (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806): only
  positive signals pass, and only where the activation passed its input:
  ``g_in = f'(x) · r(g)`` — the product of the backprop mask and the deconvnet rule.

Every other operation keeps its ordinary backward, which is what the deconvnet
prescribes for them: max-pooling's backward routes the signal through the switches
recorded in the forward pass (unpooling), a convolution's backward applies the
transposed filters.

Smooth activations that are rectifier-like — the identity for large inputs, near zero
for negative ones: SiLU/Swish (EfficientNet, RegNetY), GELU (ConvNeXt, ViT, Swin; exact
and tanh forms), Hardswish (MobileNetV3) and Mish, as modules (``nn.SiLU``, ``nn.GELU``,
``nn.Hardswish``, ``nn.Mish``, timm's ``GELU`` / ``GELUTanh``) or functions (``F.silu``,
``F.gelu``, ``F.hardswish``, ``F.mish``) — get the same two rules with ``f'(x)`` their own
local derivative:

- ``deconvnet``: ``g_in = max(g, 0)`` (the backward signal is rectified, the forward
  input ignored, as for ReLU);
- ``guided``: ``g_in = f'(x) · [x > 0] · max(g, 0)``: the activation's local gradient,
  passed only where its forward input was positive and the incoming gradient is positive.

For ReLU both reduce exactly to the papers' rules (``f'(x) = [x > 0]``). This is the usual
generalisation of guided backpropagation beyond ReLU (Springenberg et al. define it for
ReLU only; the rule keeps their two conditions, a positive forward input and a positive
backward signal, and the activation's own gradient where both hold). A ReLU written as
``x.clamp(min=0)``, ``clamp_min(0)``, ``F.threshold(x, 0, 0)`` (and ``clamp(0, t)`` as
Hardtanh(0, t)) is one too. Other activations (ELU, SELU, CELU, Softplus, RReLU) are refused by
name; sigmoid, tanh and similar squashing functions keep their ordinary backward where they
gate another tensor (squeeze-and-excitation) and are refused where they are a hidden layer's
activation or multiply their own input (a hand-written Swish, GELU, Mish or Hardswish), as
:mod:`convscope.activation_trace` finds out from the forward pass — what the network computes,
whatever its modules are called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from convscope.activation_trace import ActivationTrace, NoRule, function_name

RULES = ("deconvnet", "guided")

UNSUPPORTED_FUNCTIONS = {"elu": "ELU", "elu_": "ELU", "selu": "SELU", "selu_": "SELU", "celu": "CELU",
                         "celu_": "CELU", "softplus": "Softplus", "rrelu": "RReLU", "rrelu_": "RReLU",
                         "rrelu_with_noise": "RReLU"}  # by the torch function called (F.elu_ is elu_)


@dataclass(frozen=True)
class Rectifier:
    """One call of a rectifier: ``activation(x)``, its negative ``slope`` and upper clamp."""

    x: Tensor
    activation: Callable[[Tensor], Tensor]
    slope: float | Tensor = 0.0
    upper: float | None = None
    inplace: bool = False
    derivative: Callable[[Tensor, Tensor], Tensor] | None = None  # (g, x) -> f'(x)·g, for smooth activations


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: object) -> Any:
    """Argument ``index``/``name`` of an intercepted torch call: whatever the caller passed, so typed ``Any``."""
    return args[index] if len(args) > index else kwargs.get(name, default)


def _relu(args: tuple, kwargs: dict, inplace: bool) -> Rectifier:
    return Rectifier(args[0], torch.relu, inplace=inplace or bool(_arg(args, kwargs, 1, "inplace", False)))


def _relu6(args: tuple, kwargs: dict, inplace: bool) -> Rectifier:
    return Rectifier(args[0], lambda x: x.clamp(0.0, 6.0), upper=6.0,
                     inplace=inplace or bool(_arg(args, kwargs, 1, "inplace", False)))


def _hardtanh(args: tuple, kwargs: dict, inplace: bool) -> Rectifier:
    low = float(_arg(args, kwargs, 1, "min_val", -1.0))
    high = float(_arg(args, kwargs, 2, "max_val", 1.0))
    if low != 0.0:
        raise ValueError(f"Hardtanh({low:g}, {high:g}) is not a rectifier (its lower clamp is not 0), so the "
                         "deconvnet and guided backprop rules do not apply; use a gradient method such as "
                         "saliency, integrated gradients or Grad-CAM")
    return Rectifier(args[0], lambda x: x.clamp(0.0, high), upper=high,
                     inplace=inplace or bool(_arg(args, kwargs, 3, "inplace", False)))


def _leaky_relu(args: tuple, kwargs: dict, inplace: bool) -> Rectifier:
    slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
    return Rectifier(args[0], lambda x: F.leaky_relu(x, slope), slope=slope,
                     inplace=inplace or bool(_arg(args, kwargs, 2, "inplace", False)))


def _prelu(args: tuple, kwargs: dict, inplace: bool) -> Rectifier:
    x, weight = args[0], _arg(args, kwargs, 1, "weight", None)
    weight = weight.detach()
    slope = weight.reshape(1, -1, *([1] * (x.dim() - 2))) if weight.numel() > 1 and x.dim() > 1 else weight
    return Rectifier(x, lambda v: F.prelu(v, weight), slope=slope)


def _clamp(args: tuple, kwargs: dict, inplace: bool) -> Rectifier | None:
    """``clamp(x, 0)``/``clamp_min(x, 0)`` is a ReLU, ``clamp(x, 0, t)`` a Hardtanh(0, t); other clamps are not."""
    low, high = _arg(args, kwargs, 1, "min", None), _arg(args, kwargs, 2, "max", None)
    if isinstance(low, Tensor) or isinstance(high, Tensor) or low is None or float(low) != 0.0:
        return None
    if high is None:
        return Rectifier(args[0], torch.relu, inplace=inplace)
    upper = float(high)
    return Rectifier(args[0], lambda x: x.clamp(0.0, upper), upper=upper, inplace=inplace)


def _threshold(args: tuple, kwargs: dict, inplace: bool) -> Rectifier:
    """``threshold(x, 0, 0)`` is a ReLU; any other threshold or value is refused (not a rectifier at 0)."""
    level, value = _arg(args, kwargs, 1, "threshold", 0.0), _arg(args, kwargs, 2, "value", 0.0)
    if float(level) != 0.0 or float(value) != 0.0:
        raise ValueError(f"threshold(x, {float(level):g}, {float(value):g}) is not a rectifier at 0 (only "
                         "threshold(x, 0, 0), a ReLU, is), so the deconvnet and guided backprop rules do not apply; "
                         "use a gradient method such as saliency, integrated gradients or Grad-CAM")
    return Rectifier(args[0], torch.relu, inplace=inplace or bool(_arg(args, kwargs, 3, "inplace", False)))


def _smooth(activation: Callable[..., Tensor], derivative: Callable[..., Tensor], keyword: str | None = None
            ) -> Callable[[tuple, dict, bool], Rectifier]:
    """Parser of a smooth activation call; ``keyword`` (GELU's ``approximate``) goes to both functions."""

    def parse(args: tuple, kwargs: dict, inplace: bool) -> Rectifier:
        extra = {keyword: _arg(args, kwargs, 1, keyword, "none")} if keyword else {}
        in_place = bool(kwargs.get("inplace", args[1] if len(args) > 1 and not keyword else False))
        return Rectifier(args[0], lambda x: activation(x, **extra), inplace=in_place,
                         derivative=lambda g, x: derivative(g, x, **extra))

    return parse


_RECTIFIERS: dict[object, tuple[Callable[[tuple, dict, bool], Rectifier | None], bool]] = {
    F.silu: (_smooth(torch.ops.aten.silu, torch.ops.aten.silu_backward), False),
    F.gelu: (_smooth(torch.ops.aten.gelu, torch.ops.aten.gelu_backward, "approximate"), False),
    F.hardswish: (_smooth(torch.ops.aten.hardswish, torch.ops.aten.hardswish_backward), False),
    F.mish: (_smooth(torch.ops.aten.mish, torch.ops.aten.mish_backward), False),
    F.relu: (_relu, False), torch.relu: (_relu, False), Tensor.relu: (_relu, False),
    torch.relu_: (_relu, True), Tensor.relu_: (_relu, True),
    F.relu6: (_relu6, False),
    F.hardtanh: (_hardtanh, False), F.hardtanh_: (_hardtanh, True),
    F.leaky_relu: (_leaky_relu, False), F.leaky_relu_: (_leaky_relu, True),
    F.prelu: (_prelu, False),
    torch.clamp: (_clamp, False), Tensor.clamp: (_clamp, False), torch.clip: (_clamp, False),
    Tensor.clip: (_clamp, False), torch.clamp_: (_clamp, True), Tensor.clamp_: (_clamp, True),
    Tensor.clip_: (_clamp, True), torch.clamp_min: (_clamp, False), Tensor.clamp_min: (_clamp, False),
    torch.clamp_min_: (_clamp, True), Tensor.clamp_min_: (_clamp, True),
    F.threshold: (_threshold, False), torch.threshold: (_threshold, False), torch.threshold_: (_threshold, True),
    F.threshold_: (_threshold, True),  # type: ignore[attr-defined]  # in torch.nn.functional, not in its .pyi
}


class _Rule(torch.autograd.Function):
    """The rectifier's output forward; the deconvnet or guided rule backward."""

    @staticmethod
    def forward(ctx, x: Tensor, call: Rectifier, rule: str) -> Tensor:  # type: ignore[override]
        output = call.activation(x)
        ctx.rule, ctx.slope, ctx.upper, ctx.derivative = rule, call.slope, call.upper, call.derivative
        if rule == "guided":  # rectifiers: where the activation passed x (0 < output < upper); smooth ones: x
            smooth_input = x.clone() if call.inplace else x  # an in-place call overwrites x with the output
            ctx.save_for_backward(smooth_input if call.derivative is not None else output)
        return output

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        slope = ctx.slope
        if _is_zero(slope):
            rectified = grad.clamp_min(0)
        else:
            rectified = torch.where(grad > 0, grad, grad * slope)
        if ctx.rule != "guided":
            return rectified, None, None
        if ctx.derivative is not None:  # f'(x) · [x > 0] · max(g, 0)
            (x,) = ctx.saved_tensors
            return ctx.derivative(torch.where(x > 0, rectified, 0), x), None, None
        (output,) = ctx.saved_tensors
        if not _is_zero(slope):  # f'(x) is 1 where x > 0 (same sign as the output) and the slope elsewhere
            return rectified * torch.where(output > 0, 1.0, slope), None, None
        if ctx.upper is None:  # the derivative mask of ReLU, as its own backward applies it
            return torch.ops.aten.threshold_backward(rectified, output, 0), None, None
        return torch.ops.aten.hardtanh_backward(rectified, output, 0.0, ctx.upper), None, None


def _is_zero(slope: float | Tensor) -> bool:
    return not isinstance(slope, Tensor) and slope == 0.0


class _RuleMode(TorchFunctionMode):
    """Replaces each rectifier call by :class:`_Rule`; counts them; refuses what has no rule."""

    def __init__(self, rule: str, net: nn.Module) -> None:
        super().__init__()
        self.rule = rule
        self.rectifiers = 0
        self.trace = ActivationTrace(net)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = function_name(func)
        if name in UNSUPPORTED_FUNCTIONS:
            raise unsupported_error(self.rule, [f"{self.trace.where()}: {UNSUPPORTED_FUNCTIONS[name]}"])
        entry = _RECTIFIERS.get(func)
        call = entry[0](args, kwargs, entry[1]) if entry is not None else None
        if call is None:
            result = func(*args, **kwargs)
            try:
                self.trace.seen(func, args, kwargs, result)
            except NoRule as error:
                raise unsupported_error(self.rule, [str(error)]) from None
            return result
        self.rectifiers += 1
        x = call.x
        if not (isinstance(x, Tensor) and torch.is_grad_enabled() and x.requires_grad):
            output = func(*args, **kwargs)
        else:
            output = _Rule.apply(x, call, self.rule)
            output = x.copy_(output) if call.inplace else output
        if isinstance(output, Tensor) and isinstance(x, Tensor):
            self.trace.rectified(x, output, name)
        return output


def unsupported_error(rule: str, names: list[str]) -> ValueError:
    method = "guided backprop" if rule == "guided" else "the deconvnet"
    shown = "; ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return ValueError(f"{method} has backward rules only for rectifiers (ReLU, ReLU6, Hardtanh(0, t), LeakyReLU, "
                      f"PReLU) and SiLU, GELU, Hardswish, Mish (torch's own modules and functions); this model "
                      f"computes what it cannot handle: {shown}. Use a method that needs no "
                      "rule (saliency, SmoothGrad, integrated gradients, Grad-CAM, Score-CAM, occlusion) or a "
                      "model with ReLU-family activations")


@contextmanager
def backward_rules(net: nn.Module, rule: str) -> Iterator[None]:
    """Forward passes inside this block send gradients back through rectifiers by ``rule``.

    ``rule`` is ``'deconvnet'`` or ``'guided'``. The rule is attached to the graph built
    inside the block, so call ``backward``/``autograd.grad`` after it as usual. Nothing
    on the model is changed. Raises ``ValueError`` for activations without a rule, and
    when the forward pass met no rectifier at all (the result would be the plain gradient).
    """
    if rule not in RULES:
        raise ValueError(f"unknown backward rule {rule!r}: use 'deconvnet' or 'guided'")
    mode = _RuleMode(rule, net)
    with mode:
        yield
    if mode.rectifiers == 0:
        method = "guided backprop" if rule == "guided" else "the deconvnet"
        raise ValueError(f"{method} found no rectifier (ReLU, ReLU6, Hardtanh(0, t), LeakyReLU, PReLU, SiLU, GELU, "
                         "Hardswish, Mish) in this "
                         "model's forward pass, so its rule would change nothing and the result would be the "
                         "plain gradient; use saliency for that")
