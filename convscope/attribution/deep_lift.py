"""DeepLIFT with the rescale rule (Shrikumar, Greenside & Kundaje 2017, https://arxiv.org/abs/1704.02685)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution, copies_target, fast_layout, image_classes
from convscope.attribution.forward_args import current_rows
from convscope.attribution.forward_args import rows as forward_rows
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.hooks import capture, inspection_mode, refuse_script_module
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target

# Element-wise nonlinearities: the rescale rule, multiplier Δout / Δin.
RESCALED = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Hardtanh)
# Layers that are linear (affine) at evaluation: their ordinary gradient is their multiplier.
LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.AvgPool1d,
          nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity,
          nn.ZeroPad2d, nn.ConstantPad2d)
EPSILON = 1e-10  # |Δin| below this: the ordinary gradient, as Captum


class DeepLift(Attribution):
    """``(x − x') ⊙ m``: multipliers ``m`` of the score's difference from the baseline's, ``[B,C,H,W]``.

    Every element-wise nonlinearity (ReLU, ReLU6, LeakyReLU, ELU, sigmoid, tanh, softplus, hardtanh)
    passes ``Δout / Δin`` back instead of its derivative (the rescale rule), a ``MaxPool2d`` Captum's
    max-pool rule; linear layers their gradient. The attributions add up to ``S(x) − S(x')``
    (summation to delta); this is checked on every call, so a nonlinearity the rules cannot see (a
    functional call inside a module's forward) is reported rather than returned. Modules without
    a rule (GELU, SiLU, softmax, layer norm, attention …) are refused, naming them. ``baseline`` as
    in :class:`~convscope.attribution.IntegratedGradients` (Captum's ``baselines=`` also works).
    """

    takes_forward_args = True

    name = "deep_lift"
    title = "DeepLIFT"
    paper = "https://arxiv.org/abs/1704.02685"
    style = "saliency"

    def __init__(self, model: Model | nn.Module, *, baseline: str | float | Tensor = "black") -> None:
        super().__init__(model)
        self.baseline = baseline

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """``|attribution|`` summed over colour channels."""
        return upsample(maps.abs().sum(1), size)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        baseline = baseline_tensor(self.baseline, inputs, self.model)
        return deep_lift(self.model, inputs, baseline, target, self.title)


def deep_lift(model: Model, inputs: Tensor, baseline: Tensor, target: Target, title: str = "DeepLIFT",
              layer: str | None = None) -> Tensor:
    """DeepLIFT's attributions of ``target`` for ``inputs`` against ``baseline`` (shaped like ``inputs``): to the
    input pixels, or with ``layer`` to that layer's output (Captum's ``LayerDeepLift``), as it is shaped there."""
    net = model.net
    refuse_script_module(net)
    check_rules(net, title)
    batch = inputs.shape[0]
    rows = torch.cat([torch.arange(batch, device=inputs.device)] * 2)
    images = current_rows()  # the images of these inputs, when they are copies (DeepLIFT-SHAP)
    images = torch.cat([rows[:batch] if images is None else images] * 2)
    both = fast_layout(torch.cat([inputs, baseline.expand_as(inputs)]).detach()).requires_grad_(True)
    handles = []
    try:  # the rules' hooks first: a layer or target that is itself rescaled is read after its rule
        for module in net.modules():
            if isinstance(module, RESCALED):
                handles.append(module.register_forward_hook(_rescaled))
            elif isinstance(module, nn.MaxPool2d):
                handles.append(module.register_forward_hook(_max_pooled))
        read = list(dict.fromkeys(([layer] if layer else []) + list(target.layers)))
        with inspection_mode(net, grad_params=None), capture(net, read) as store, forward_rows(images):
            output = net(both)
            classes = image_classes(target, output[:batch].detach())  # a class target: the input's, for both halves
            scores = copies_target(target, classes, rows)(output, store.activations)
            start = both if layer is None else store.activation(layer)
            (grads,) = torch.autograd.grad(scores[:batch].sum(), start, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    start = start.detach()
    grads = torch.zeros_like(start) if grads is None else grads
    difference = (start[:batch] - start[batch:]).float()
    attributions = difference * grads[:batch].float()
    _check_summation(attributions, scores.detach().float(), batch, title)
    return attributions.to(inputs.dtype)


def check_rules(net: nn.Module, title: str) -> None:
    """A ``ValueError`` naming the first module that has no DeepLIFT rule and is not linear."""
    for name, module in net.named_modules():
        if any(True for _ in module.children()) or isinstance(module, RESCALED + LINEAR + (nn.MaxPool2d,)):
            continue
        raise ValueError(f"{title} has no rule for {name!r} ({type(module).__name__}): the rescale rule covers "
                         "ReLU-like, sigmoid and tanh activations, max-pooling and linear layers; use Integrated "
                         "Gradients on this model")


def _check_summation(attributions: Tensor, scores: Tensor, batch: int, title: str) -> None:
    delta = scores[:batch] - scores[batch:]
    total = attributions.flatten(1).sum(1)
    allowed = 1e-3 * torch.maximum(delta.abs(), scores[:batch].abs()).clamp_min(1e-6)
    if bool(((total - delta).abs() > allowed).any()):
        worst = int(((total - delta).abs() / allowed).argmax())
        raise ValueError(f"{title}'s attributions of image {worst} add up to {float(total[worst]):.6g}, not to "
                         f"S(x) − S(x') = {float(delta[worst]):.6g}: the model has a nonlinearity the rules do not "
                         "see (a functional call such as F.relu or F.gelu inside a module); use Integrated Gradients")


class _PairRule(torch.autograd.Function):
    """Identity on the module's output forward, keeping its input and output (picture and reference halves) for a
    backward rule of DeepLIFT's (the subclasses)."""

    @staticmethod
    def forward(ctx, inputs: Tensor, output: Tensor, module: nn.Module) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(inputs, output)
        ctx.module = module
        return output.clone()


class _Rescale(_PairRule):
    """Backward: the rescale multiplier Δout/Δin (both halves alike)."""

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:  # noqa: ANN001
        inputs, output = ctx.saved_tensors
        half = inputs.shape[0] // 2
        delta_in = torch.cat(2 * [inputs[:half] - inputs[half:]])
        delta_out = torch.cat(2 * [output[:half] - output[half:]])
        tiny = delta_in.abs() < EPSILON
        rescaled = grad_output * delta_out / torch.where(tiny, 1, delta_in)
        return torch.where(tiny, _local(ctx.module, inputs, grad_output), rescaled) if bool(tiny.any()) else rescaled, \
            None, None


class _MaxPool(_PairRule):
    """Backward: Captum's max-pool rule, Δout split at the argmax of the input and of the baseline, over Δin."""

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:  # noqa: ANN001
        inputs, output = ctx.saved_tensors
        pool = ctx.module
        half = inputs.shape[0] // 2
        high = torch.maximum(output[:half], output[half:])
        grad = grad_output[:half]
        shares = torch.cat([grad * (high - output[half:]), grad * (output[:half] - high)])
        with torch.enable_grad():  # each share back to its window's argmax (of the input, of the baseline), summed
            again = inputs.detach().requires_grad_(True)
            (unpooled,) = torch.autograd.grad(pool.forward(again), again, shares)
        summed = torch.cat(2 * [unpooled[:half] + unpooled[half:]])
        delta_in = torch.cat(2 * [inputs[:half] - inputs[half:]])
        tiny = delta_in.abs() < EPSILON
        rescaled = summed / torch.where(tiny, 1, delta_in)
        return torch.where(tiny, _local(pool, inputs, grad_output), rescaled) if bool(tiny.any()) else rescaled, \
            None, None


def _local(module: nn.Module, inputs: Tensor, grad_output: Tensor) -> Tensor:
    """The module's ordinary backward (where Δin is too small to divide by), without its hooks."""
    with torch.enable_grad():
        again = inputs.detach().requires_grad_(True)
        (local,) = torch.autograd.grad(module.forward(again), again, grad_output)
    return local


def _rescaled(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return _Rescale.apply(args[0], output, module)


def _max_pooled(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return _MaxPool.apply(args[0], output, module)
