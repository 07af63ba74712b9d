"""The deconvnet of Zeiler & Fergus 2014 (https://arxiv.org/abs/1311.2901)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution, check_inputs, input_gradient
from convscope.backward_rules import backward_rules
from convscope.hooks import capture, inspection_mode
from convscope.models.layers import layer_name
from convscope.targets import Target


class Deconvnet(Attribution):
    """Projects a target back to pixels through the deconvnet.

    Going down, the deconvnet *unpools* with the switches recorded by max-pooling in
    the forward pass — exactly max-pooling's ordinary backward —, *rectifies* the
    backward signal with a ReLU (whatever the forward activation was; this is what
    makes it differ from guided backprop, which also masks by the forward pass) and
    *filters* with the transposed filters — a convolution's ordinary backward. Biases
    are not used. Returns signed colour maps ``[B,C,H,W]``.

    :meth:`project` is the paper's way to look at one feature map: keep that map's
    activations, set every other activation of the layer to zero, and pass the result down.

    Without max-pooling the map is the same for every picture (``may_ignore_pictures``; see
    :mod:`convscope.attribution.picture_independence`).
    """

    takes_forward_args = True

    name = "deconvnet"
    title = "Deconvnet"
    paper = "https://arxiv.org/abs/1311.2901"
    style = "image"
    may_ignore_pictures = True

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        return input_gradient(self.model, inputs, target, rule="deconvnet")

    def project(self, inputs: Tensor, layer: str | nn.Module, channel: int, *, strongest: bool = False) -> Tensor:
        """Feature map ``channel`` of ``layer`` (all others zeroed) projected to pixels, ``[B,C,H,W]``.

        With ``strongest`` only the map's largest activation is kept (the paper's
        projections of single top activations).
        """
        inputs = check_inputs(inputs, self.model).requires_grad_(True)
        name = layer_name(self.model.net, layer)
        net = self.model.net
        with inspection_mode(net), capture(net, [name]) as store:
            with backward_rules(net, "deconvnet"):
                net(inputs)
            maps = store.activation(name)
            if maps.dim() < 2 or not 0 <= channel < maps.shape[1]:
                raise ValueError(f"channel {channel} is out of range: layer {name!r} gives {tuple(maps.shape)}")
            signal = torch.zeros_like(maps)
            chosen = maps[:, channel].detach()
            if strongest:
                flat = chosen.reshape(chosen.shape[0], -1)
                keep = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0)
                chosen = chosen * keep.reshape(chosen.shape)
            signal[:, channel] = chosen
            (grad,) = torch.autograd.grad(maps, inputs, grad_outputs=signal, allow_unused=True)
        return torch.zeros_like(inputs) if grad is None else grad
