"""One forward and backward pass: a target's value and its gradients at the input, layers and weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model, as_model
from convscope.reprs import short_repr
from convscope.targets import Target, TargetLike, as_target, check_finite_output


@dataclass
class GradientPass:
    """Results of :func:`gradient_pass`; everything detached, on the model's device."""

    __repr__ = short_repr

    output: Tensor
    scores: Tensor
    classes: Tensor | None
    input_grad: Tensor
    activations: dict[str, Tensor] = field(default_factory=dict)
    grads: dict[str, Tensor] = field(default_factory=dict)
    weight_grads: dict[str, Tensor] = field(default_factory=dict)


def gradient_pass(model: Model, inputs: Tensor, target: TargetLike = None, layers: Sequence[str] = (), *,
                  weights: Sequence[str] = ()) -> GradientPass:
    """d target / d (inputs, layer outputs, ``weights`` parameters) for a normalised batch.

    Images in a batch are independent (the model runs in evaluation mode), so the
    gradient of the summed target gives every image its own gradient.
    ``weights`` are parameter names (``'conv_stem.weight'``); their gradients sum over the batch.
    """
    model = as_model(model)
    goal: Target = as_target(target, model)
    names = list(dict.fromkeys([*layers, *goal.layers]))
    inputs = inputs.detach().to(model.device, model.dtype, copy=True).requires_grad_(True)
    params = dict(model.net.named_parameters())
    missing = [w for w in weights if w not in params]
    if missing:
        raise ValueError(f"unknown parameters {missing}; see model.net.named_parameters()")
    with inspection_mode(model.net, grad_params=True if weights else None), capture(model.net, names) as store:
        output = model.net(inputs)
        check_finite_output(output, model.name)
        scores = goal(output, store.activations)
        wanted = [inputs] + [store.activation(n) for n in layers] + [params[w] for w in weights]
        grads = torch.autograd.grad(scores.sum(), wanted, allow_unused=True)
    grads = tuple(torch.zeros_like(w) if g is None else g for w, g in zip(wanted, grads, strict=True))
    layer_grads = grads[1:1 + len(layers)]
    return GradientPass(
        output=output.detach(), scores=scores.detach(), classes=goal.classes(output.detach()),
        input_grad=grads[0],
        activations={n: store.activations[n].detach() for n in layers},
        grads=dict(zip(layers, layer_grads, strict=True)),
        weight_grads=dict(zip(weights, grads[1 + len(layers):], strict=True)),
    )
