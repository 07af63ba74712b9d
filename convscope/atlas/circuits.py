"""Circuit links between the channels of two consecutive chosen layers: how strongly each channel of the first
drives each channel of the next (after Olah et al., "Zoom In: An Introduction to Circuits", Distill 2020,
https://distill.pub/2020/circuits/zoom-in/).

``strength[c, j]`` is d mean(next channel ``j``) / d (channel ``c`` raised by one everywhere): the gradient of
``j``'s mean over positions with respect to ``c``'s map, summed over ``c``'s positions and averaged over a few
pictures. Where the next layer is a convolution reading the first layer's output directly, this is (away from
the borders) the sum of its kernel ``W[j, c]``, which is used instead: exact, and the same for every picture.
Positive: ``c`` excites ``j``; negative: it inhibits it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.hooks import inspection_mode
from convscope.models.layers import get_layer
from convscope.models.model import Model
from convscope.reprs import short_repr

LINKS = 8  # links kept per channel and direction


class _Done(Exception):
    pass


@dataclass
class Links:
    """``strength`` ``[C_source, C_target]`` from ``source`` to ``target``, found by ``method`` (weights|gradients)."""

    __repr__ = short_repr

    source: str
    target: str
    strength: Tensor
    method: str

    def drives(self, channel: int, count: int = LINKS) -> list[dict]:
        """The ``count`` channels of ``target`` that ``channel`` of ``source`` affects most (by |strength|)."""
        return _strongest(self.strength[channel], self.target, count)

    def driven_by(self, channel: int, count: int = LINKS) -> list[dict]:
        """The ``count`` channels of ``source`` that affect ``channel`` of ``target`` most."""
        return _strongest(self.strength[:, channel], self.source, count)


def links(model: Model, source: str, target: str, pictures: Tensor) -> Links:
    """The links from ``source`` to ``target`` (a later layer), on ``pictures`` ``[P,C,H,W]`` (normalised model
    input) where gradients are needed."""
    direct = _direct_convolution(model, source, target, pictures[:1])
    if direct is not None:
        return Links(source, target, direct.weight.detach().float().sum((2, 3)).T.cpu(), "weights")
    return Links(source, target, gradient_strength(model, source, target, pictures), "gradients")


def gradient_strength(model: Model, source: str, target: str, pictures: Tensor) -> Tensor:
    """``[C_source, C_target]``: d mean(target channel) / d (source channel + 1 everywhere), mean over pictures."""
    net = model.net
    found: dict[str, Tensor] = {}

    def at_source(module: nn.Module, inputs: object, output: Tensor) -> Tensor:
        leaf = output.detach().clone().requires_grad_(True)
        found["source"] = leaf
        return leaf

    def at_target(module: nn.Module, inputs: object, output: Tensor) -> None:
        found["target"] = output
        raise _Done

    with inspection_mode(net):
        handles = [get_layer(net, source).register_forward_hook(at_source),
                   get_layer(net, target).register_forward_hook(at_target)]
        try:
            try:
                net(pictures.to(model.device))
            except _Done:
                pass
        finally:
            for handle in handles:
                handle.remove()
        if "target" not in found or "source" not in found:
            raise ValueError(f"{target!r} does not run after {source!r} in the forward pass: give the layers in the "
                             "order the network runs them")
        leaf, out = found["source"], found["target"]
        means = out.reshape(out.shape[0], out.shape[1], -1).mean(2).sum(0)  # [C_target], summed over pictures
        columns = []
        for j in range(means.shape[0]):
            (grad,) = torch.autograd.grad(means[j], leaf, retain_graph=j + 1 < means.shape[0], allow_unused=True)
            if grad is None:
                columns.append(torch.zeros(leaf.shape[1]))
            else:
                columns.append(grad.reshape(grad.shape[0], grad.shape[1], -1).sum(2).mean(0).float().cpu())
    return torch.stack(columns, dim=1)


def _direct_convolution(model: Model, source: str, target: str, picture: Tensor) -> nn.Conv2d | None:
    """``target`` when it is an ungrouped convolution whose input is exactly ``source``'s output, else ``None``."""
    module = get_layer(model.net, target)
    if not isinstance(module, nn.Conv2d) or module.groups != 1:
        return None
    seen: dict[str, object] = {}

    def at_source(mod: nn.Module, inputs: object, output: object) -> None:
        seen["source"] = output

    def at_target(mod: nn.Module, inputs: tuple, output: object) -> None:
        seen["target"] = inputs[0] if inputs else None
        raise _Done

    with inspection_mode(model.net), torch.no_grad():
        handles = [get_layer(model.net, source).register_forward_hook(at_source),
                   module.register_forward_hook(at_target)]
        try:
            try:
                model.net(picture.to(model.device))
            except _Done:
                pass
        finally:
            for handle in handles:
                handle.remove()
    return module if "source" in seen and seen.get("target") is seen["source"] else None


def _strongest(row: Tensor, layer: str, count: int) -> list[dict]:
    order = torch.argsort(row.abs(), descending=True, stable=True)[:count]
    return [{"layer": layer, "channel": int(j), "strength": float(row[j])} for j in order.tolist()]
