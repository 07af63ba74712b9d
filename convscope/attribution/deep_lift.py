"""DeepLIFT with the rescale rule (Shrikumar, Greenside & Kundaje 2017, https://arxiv.org/abs/1704.02685)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution, copies_target, fast_layout, image_classes
from convscope.attribution.batch_norm_folding import norms_folded
from convscope.attribution.forward_args import current_rows, per_image_arguments
from convscope.attribution.forward_args import rows as forward_rows
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.hooks import LayerOutputs, capture, inspection_mode, refuse_script_module, resolve_layer
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
    input pixels, or with ``layer`` to that layer's output (Captum's ``LayerDeepLift``), as it is shaped there.

    The baseline goes through the model first, without a graph, keeping each rule's input and output; the
    rules then use them in the inputs' own pass, so the backward pass runs over the inputs alone. A baseline
    that is the same for every image (``'black'``, or a tensor expanded to the batch) goes through once. With
    ``layer``, the inputs' pass builds no graph before the layer, and the rules before it are not applied
    (the backward pass stops at the layer)."""
    net = model.net
    refuse_script_module(net)
    check_rules(net, title)
    batch = inputs.shape[0]
    rows = torch.arange(batch, device=inputs.device)
    images = current_rows()  # the images of these inputs, when they are copies (DeepLIFT-SHAP)
    images = rows if images is None else images
    shared = (baseline.shape[0] == 1 or baseline.stride(0) == 0) and (batch == 1 or not per_image_arguments())
    reference = fast_layout((baseline[:1] if shared else baseline.expand_as(inputs)).detach())
    x = fast_layout(inputs.detach()).requires_grad_(layer is None)
    ruled = [module for module in net.modules() if isinstance(module, RESCALED + (nn.MaxPool2d,))]
    read = list(dict.fromkeys(([layer] if layer else []) + list(target.layers)))
    opened = [layer is None]  # whether the rules apply yet: from the input on, or once the layer has run
    pairs: list[tuple[Tensor, Tensor] | None] = []  # each rule's input and output on the baseline, in call order
    handles = []
    try:  # the rules' hooks first: a layer or target that is itself rescaled is read after its rule
        with inspection_mode(net, grad_params=None), \
                norms_folded(net, reference[:1], [layer, *target.layers] if layer else list(target.layers)):
            handles = [module.register_forward_hook(_recorder(pairs, opened)) for module in ruled]
            if layer is not None:
                handles.append(resolve_layer(net, layer)[1].register_forward_hook(_opening(opened, leaf=False)))
            with torch.no_grad(), capture(net, read) as kept, forward_rows(images[:1] if shared else images):
                reference_output = net(reference)
            for handle in handles:
                handle.remove()
            calls, opened[0] = iter(pairs), layer is None
            handles = [module.register_forward_hook(_ruled(calls, opened, title)) for module in ruled]
            if layer is not None:  # no graph before the layer: its output is where the gradient stops
                handles.append(resolve_layer(net, layer)[1].register_forward_hook(_opening(opened, leaf=True)))
            with capture(net, read) as store, forward_rows(images), torch.set_grad_enabled(layer is None):
                output = net(x)
            if next(calls, _END) is not _END:
                raise ValueError(f"{title}: the model ran fewer activations on the inputs than on the baseline (its "
                                 "forward depends on the values); use Integrated Gradients on this model")
            classes = image_classes(target, output.detach())  # a class target: the input's, for both
            chosen = copies_target(target, classes, rows)
            scores = chosen(output, store.activations)
            start = x if layer is None else store.activation(layer)
            (grads,) = torch.autograd.grad(scores.sum(), start, allow_unused=True)
            reference_scores = chosen(_rows_of(reference_output, batch), _each_image(kept.activations, batch))
            reference_start = reference if layer is None else kept.activation(layer)
    finally:
        for handle in handles:
            handle.remove()
    start = start.detach()
    grads = torch.zeros_like(start) if grads is None else grads
    attributions = (start - reference_start).float() * grads.float()
    _check_summation(attributions, torch.cat([scores.detach(), reference_scores]).float(), batch, title)
    return attributions.to(inputs.dtype)


_END = object()


def _rows_of(tensor: Tensor, batch: int) -> Tensor:
    """``tensor`` with ``batch`` rows: a one-row tensor (a shared baseline's) expanded."""
    return tensor.expand(batch, *tensor.shape[1:]) if tensor.shape[0] == 1 else tensor


def _each_image(activations: LayerOutputs, batch: int) -> LayerOutputs:
    expanded = LayerOutputs({name: _rows_of(value, batch) for name, value in activations.items()})
    expanded.input_size = activations.input_size
    return expanded


def _recorder(pairs: list[tuple[Tensor, Tensor] | None], opened: list[bool]):
    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        if not opened[0]:
            pairs.append(None)
            return None
        pairs.append((args[0], output))
        return output.clone()  # an in-place operation later cannot change what was kept
    return hook


def _ruled(calls, opened: list[bool], title: str):  # noqa: ANN001
    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        pair = next(calls, _END)  # what the baseline's pass kept here: a pair, or None before the layer
        if (pair is _END or (pair is None) == opened[0]
                or (isinstance(pair, tuple) and pair[0].shape[1:] != args[0].shape[1:])):
            raise ValueError(f"{title}: the model ran other activations on the inputs than on the baseline (its "
                             "forward depends on the values); use Integrated Gradients on this model")
        if not isinstance(pair, tuple):
            return None
        rule = _MaxPool if isinstance(module, nn.MaxPool2d) else _Rescale
        return rule.apply(args[0], output, *pair, module)
    return hook


def _opening(opened: list[bool], *, leaf: bool):
    """The layer's hook: the rules apply from here on; with ``leaf``, the graph starts at its output."""
    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        opened[0] = True
        if not leaf or not isinstance(output, Tensor):
            return None
        torch.set_grad_enabled(True)  # until the pass ends (the caller's set_grad_enabled restores it)
        return output.detach().requires_grad_(True)
    return hook


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
    """Identity on the module's output forward, keeping its input and output and the baseline's (one row when it is
    shared by every image) for a backward rule of DeepLIFT's (the subclasses)."""

    @staticmethod
    def forward(ctx, inputs: Tensor, output: Tensor, reference_in: Tensor, reference_out: Tensor,  # noqa: ANN001
                module: nn.Module) -> Tensor:
        ctx.save_for_backward(inputs, output, reference_in, reference_out)
        ctx.module = module
        return output.clone()


class _Rescale(_PairRule):
    """Backward: the rescale multiplier Δout/Δin."""

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        inputs, output, reference_in, reference_out = ctx.saved_tensors
        delta_in = inputs - reference_in
        rescaled = (output - reference_out).mul_(grad_output).div_(delta_in)  # where Δin is tiny, replaced below
        size = delta_in.abs()
        if bool(size.amin() < EPSILON):  # a float reduction first: comparisons into booleans are slow on a CPU
            rescaled = torch.where(size < EPSILON, _local(ctx.module, inputs, grad_output), rescaled)
        return rescaled, None, None, None, None


class _MaxPool(_PairRule):
    """Backward: Captum's max-pool rule, Δout split at the argmax of the input and of the baseline, over Δin."""

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        inputs, output, reference_in, reference_out = ctx.saved_tensors
        pool = ctx.module
        high = torch.maximum(output, reference_out)
        shares = torch.cat([grad_output * (high - reference_out), grad_output * (output - high)])
        with torch.enable_grad():  # each share back to its window's argmax (of the input, of the baseline), summed
            again = torch.cat([inputs, reference_in.expand_as(inputs)]).detach().requires_grad_(True)
            (unpooled,) = torch.autograd.grad(pool.forward(again), again, shares)
        half = inputs.shape[0]
        delta_in = inputs - reference_in
        tiny = delta_in.abs() < EPSILON
        rescaled = (unpooled[:half] + unpooled[half:]) / torch.where(tiny, 1, delta_in)
        if bool(tiny.any()):
            rescaled = torch.where(tiny, _local(pool, inputs, grad_output), rescaled)
        return rescaled, None, None, None, None


def _local(module: nn.Module, inputs: Tensor, grad_output: Tensor) -> Tensor:
    """The module's ordinary backward (where Δin is too small to divide by), without its hooks."""
    if type(module) in (nn.ReLU6, nn.Hardtanh):  # the kernel their own backward runs
        return torch.ops.aten.hardtanh_backward(grad_output, inputs, module.min_val, module.max_val)
    if type(module) is nn.ReLU:
        return torch.ops.aten.threshold_backward(grad_output, inputs, 0)
    with torch.enable_grad():
        again = inputs.detach().requires_grad_(True)
        (local,) = torch.autograd.grad(module.forward(again), again, grad_output)
    return local
