"""One feature map projected down to pixels (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901, §2.1).

The map's activations are kept, every other activation of the layer is set to zero, and the
result is passed down through the deconvnet — figure 7(c) shows this projection of the strongest
feature map beside the occlusion maps, so that a reader sees *what* the feature responds to. On a
network without max-pooling the deconvnet reads nothing of the picture (see
:mod:`convscope.attribution.picture_independence`); :func:`strongest_map_projection` then projects
with guided backprop (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806) and says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from convscope.attribution.base import check_inputs
from convscope.attribution.picture_independence import ignores_pictures
from convscope.backward_rules import backward_rules
from convscope.hooks import capture, inspection_mode
from convscope.models.layers import layer_name

if TYPE_CHECKING:
    from convscope.attribution.occlusion import OcclusionMaps
    from convscope.models.model import Model

RULES = {"deconvnet": "deconvnet", "guided backprop": "guided"}


def project_feature_map(model: Model, inputs: Tensor, layer: str | nn.Module, channels: int | Tensor, *,
                        method: str = "deconvnet", strongest: bool = False) -> Tensor:
    """Per picture, feature map ``channels`` (one int, or one per picture) of ``layer`` projected, ``[B,C,H,W]``.

    ``method`` is ``'deconvnet'`` or ``'guided backprop'``. With ``strongest`` only each map's largest
    activation is kept (the paper's projections of single top activations).
    """
    if method not in RULES:
        raise ValueError(f"unknown projection {method!r}: use one of {', '.join(RULES)}")
    inputs = check_inputs(inputs, model).requires_grad_(True)
    name = layer_name(model.net, layer)
    net = model.net
    with inspection_mode(net), capture(net, [name]) as store:
        with backward_rules(net, RULES[method]):
            net(inputs)
        maps = store.activation(name)
        picked = torch.as_tensor(channels, device=maps.device).long().expand(maps.shape[0])
        if maps.dim() < 2 or bool(((picked < 0) | (picked >= maps.shape[1])).any()):
            raise ValueError(f"channel {channels} is out of range: layer {name!r} gives {tuple(maps.shape)}")
        rows = torch.arange(maps.shape[0], device=maps.device)
        chosen = maps[rows, picked].detach()
        if strongest:
            flat = chosen.reshape(chosen.shape[0], -1)
            keep = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0)
            chosen = chosen * keep.reshape(chosen.shape)
        signal = torch.zeros_like(maps)
        signal[rows, picked] = chosen
        (grad,) = torch.autograd.grad(maps, inputs, grad_outputs=signal, allow_unused=True)
    return torch.zeros_like(inputs) if grad is None else grad.detach()


def strongest_map_projection(model: Model, inputs: Tensor, layer: str, channels: Tensor) -> tuple[Tensor, str]:
    """Each picture's feature map ``channels[i]`` projected, and the method used.

    The deconvnet, as in the paper, unless the network gives it nothing of the picture to read (its
    map for a class is the same for a random input: no max-pooling switches): then guided backprop,
    which also masks by the forward pass. Scaling a fixed pattern by the picture's activations would
    otherwise look like a result.
    """
    from convscope.attribution.deconvnet import Deconvnet

    if ignores_pictures(Deconvnet(model), inputs[:1]):
        return project_feature_map(model, inputs, layer, channels, method="guided backprop"), "guided backprop"
    return project_feature_map(model, inputs, layer, channels), "deconvnet"

def occlusion_projection(model: Model, pixels: Tensor, found: OcclusionMaps) -> tuple[Tensor, str] | None:
    """The projection of each picture's strongest feature map of an occlusion study (``None`` without a layer).

    ``pixels`` ``[B,3,H,W]`` are the pictures as the model sees them before normalisation.
    """
    if found.layer is None or found.channel is None:
        return None
    inputs = model.preprocess.normalize(pixels.to(model.device))
    return strongest_map_projection(model, inputs, found.layer, found.channel)
