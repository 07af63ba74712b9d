"""Layer-wise relevance propagation with composites (Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140).

Relevance starts as the target's score (a class logit: ``R = z_c`` at the output, zero
elsewhere) and is handed down layer by layer by each layer's rule
(:mod:`~convscope.attribution.lrp_rules`), as the composite assigns them
(:mod:`~convscope.attribution.lrp_composites`), on a canonised copy of the model
(:mod:`~convscope.attribution.lrp_canonizers`). The same maps as Zennit's composites
with its canonizers (Anders et al. 2021, https://arxiv.org/abs/2106.13200).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution
from convscope.attribution.lrp_canonizers import canonised_copy
from convscope.attribution.lrp_composites import Composite
from convscope.attribution.lrp_composites import composite as make_composite
from convscope.attribution.lrp_propagation import ResidualSums, rule_hooks
from convscope.hooks import LayerOutputs, capture
from convscope.logs import get_logger
from convscope.models.model import Model, as_model
from convscope.render.overlay import upsample
from convscope.reprs import short_repr
from convscope.targets import Target

log = get_logger(__name__)


@dataclass
class RelevancePass:
    """One LRP pass: relevance at the input ``[B,C,H,W]`` and at recorded layers, their activations, the output."""

    __repr__ = short_repr

    inputs: Tensor
    layers: dict[str, Tensor] = field(default_factory=dict)
    activations: dict[str, Tensor] = field(default_factory=dict)
    output: Tensor | None = None


def _scored(value: Tensor) -> Tensor:
    """``value`` whose backward multiplies the incoming gradient by ``value``: relevance starts as score × gradient."""
    product = value * value.detach()
    return value.detach() + (product - product.detach())


def propagate(model: Model | nn.Module, inputs: Tensor, target: Target, chosen: Composite, *,
              record: Sequence[str] = (), masks: dict[str, Callable[[Tensor], Tensor]] | None = None
              ) -> RelevancePass:
    """Relevance of ``target`` for ``inputs`` (a checked batch on the model's device) under ``chosen``.

    ``record``: layers whose output relevance and activations are returned. ``masks``: per
    layer, a function applied to the relevance at that layer's output before it goes on
    down (concept relevance conditions on channels this way).
    """
    model = as_model(model)
    masks = masks or {}
    layers = list(dict.fromkeys([*target.layers, *record, *masks]))
    x = inputs.detach().clone().requires_grad_(True)
    with canonised_copy(model.net, inputs[:1]) as net:
        rules = chosen.rules(net)
        with rule_hooks(net, rules), capture(net, layers, grads=True) as store:
            with ResidualSums(chosen.norm_epsilon):
                output = net(x)
            for name, mask in masks.items():
                store.activation(name).register_hook(mask)
            seen = LayerOutputs({name: _scored(value) for name, value in store.activations.items()})
            seen.input_size = store.activations.input_size
            scores = target(_scored(output), seen)
            (relevance,) = torch.autograd.grad(scores.sum(), x, allow_unused=True)
    relevance = torch.zeros_like(x) if relevance is None else relevance
    found = {name: store.grads.get(name, torch.zeros_like(store.activation(name))).detach() for name in record}
    acts = {name: store.activation(name).detach() for name in record}
    return RelevancePass(relevance.detach().contiguous(), found, acts, output.detach())


def model_composite(model: Model, chosen: str | Composite, *, epsilon: float = 1e-6, gamma: float = 0.25
                    ) -> Composite:
    """The composite ``chosen`` (a name or a Composite), with z^B's bounds: pixels 0 and 1 after ``model``'s
    normalisation."""
    pre = model.preprocess
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
    return make_composite(chosen, low=(0 - mean) / std, high=(1 - mean) / std, epsilon=epsilon, gamma=gamma)


def _warn_if_exploded(relevance: Tensor, chosen: Composite) -> None:
    """A warning when the relevance of an image grew by orders of magnitude (denominators that crossed zero)."""
    total = relevance.flatten(1).sum(1).abs()
    spread = relevance.flatten(1).abs().amax(1)
    if bool(((spread > 1e6) & (spread > 1e4 * total.clamp_min(1e-12))).any()) or not bool(relevance.isfinite().all()):
        log.warning(f"LRP with {chosen.name}: the relevance exploded (values up to {float(spread.max()):.3g}); its "
                    "rules' denominators cross zero on this model (the γ-rule on inputs of both signs, e.g. after "
                    "linear bottlenecks); epsilon-plus-flat stays stable")


class LRP(Attribution):
    """Layer-wise relevance propagation with a Zennit composite; returns relevance ``[B,C,H,W]`` at the input.

    ``composite``: ``epsilon-plus-flat`` (default), ``epsilon-plus``, ``epsilon-gamma-box``,
    ``epsilon-alpha2-beta1``, ``epsilon-alpha2-beta1-flat``, or a
    :class:`~convscope.attribution.lrp_composites.Composite`. Summed over pixels and
    colours, the relevance is the target's score less what biases and stabilisers absorb.
    """

    name = "lrp"
    title = "LRP"
    paper = "https://doi.org/10.1371/journal.pone.0130140"
    style = "heat"

    def __init__(self, model: Model | nn.Module, composite: str | Composite = "epsilon-plus-flat", *,
                 epsilon: float = 1e-6, gamma: float = 0.25) -> None:
        super().__init__(model)
        self.composite = model_composite(self.model, composite, epsilon=epsilon, gamma=gamma)
        self.title = f"LRP ({self.composite.name})"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        found = propagate(self.model, inputs, target, self.composite)
        _warn_if_exploded(found.inputs, self.composite)
        return found.inputs

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """Positive relevance summed over colours ``[B,H,W]`` (negative relevance is left out of the overlay)."""
        return upsample(maps.sum(1).clamp_min(0), size)

