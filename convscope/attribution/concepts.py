"""Concept relevance propagation: which channels of a layer carried the relevance, and where each one looked.

Achtibat et al. 2023, "From attribution maps to human-understandable explanations through
Concept Relevance Propagation" (https://doi.org/10.1038/s42256-023-00711-8). One LRP pass
gives the relevance of every channel of ``layer`` for a picture and a target; the
*conditional* heat map of channel ``c`` is the LRP map with the relevance at ``layer``
kept only on ``c`` on its way down (zennit-crp's ``CondAttribution`` with a channel
condition). Conditional maps of all channels sum to the plain LRP map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.attribution.base import batch_size_for, check_inputs, forward
from convscope.attribution.lrp import model_composite, propagate
from convscope.attribution.lrp_composites import Composite
from convscope.models.layers import layer_name
from convscope.models.model import Model, as_model
from convscope.reprs import short_repr
from convscope.targets import TargetLike, as_target


@dataclass
class Concepts:
    """The channels of ``layer`` that carried most relevance for one picture, best first.

    ``relevance`` ``[K]`` each channel's relevance (summed over positions), ``share`` ``[K]``
    that relevance over the sum of all channels' absolute relevances, ``total`` the
    layer's summed relevance, ``maps`` ``[K,C,H,W]`` each channel's conditional relevance
    at the input.
    """

    __repr__ = short_repr

    layer: str
    channels: list[int]
    relevance: Tensor
    share: Tensor
    maps: Tensor
    total: float
    composite: str


def channel_relevance(model: Model | nn.Module, inputs: Tensor, target: TargetLike, layer: str | nn.Module, *,
                      composite: str | Composite = "epsilon-plus-flat") -> Tensor:
    """Each channel's relevance at ``layer`` ``[B,C]`` (summed over positions) for ``inputs`` and ``target``."""
    model = as_model(model)
    name = layer_name(model.net, layer)
    chosen = model_composite(model, composite)
    found = propagate(model, check_inputs(inputs, model), as_target(target, model), chosen, record=[name])
    relevance = found.layers[name]
    return relevance.flatten(2).sum(2) if relevance.dim() > 2 else relevance


def conditional_relevance(model: Model | nn.Module, inputs: Tensor, target: TargetLike, layer: str | nn.Module,
                          channels: Sequence[int], *, composite: str | Composite = "epsilon-plus-flat",
                          batch_size: int | None = None) -> Tensor:
    """The input relevance of one picture ``[1,C,H,W]`` conditioned on each of ``channels`` of ``layer``:
    ``[K,C,H,W]``, the relevance at ``layer`` kept only on that channel on its way down."""
    model = as_model(model)
    inputs = check_inputs(inputs, model)
    if inputs.shape[0] != 1:
        raise ValueError(f"conditional relevance explains one picture at a time, got a batch of {inputs.shape[0]}")
    name = layer_name(model.net, layer)
    goal = as_target(target, model)
    chosen = model_composite(model, composite)
    wanted = torch.as_tensor(list(channels), dtype=torch.long)
    if wanted.numel() == 0:
        raise ValueError("name at least one channel to condition on")
    count = forward(model, inputs, [name])[1][name].shape[1]
    if int(wanted.min()) < 0 or int(wanted.max()) >= count:
        raise ValueError(f"channels {sorted(set(wanted.tolist()))} do not all exist: layer {name!r} has channels "
                         f"0 … {count - 1}")
    size = batch_size_for(batch_size, inputs.device)
    parts = []
    for start in range(0, len(wanted), size):
        chunk = wanted[start:start + size]

        def keep_only(relevance: Tensor, chunk: Tensor = chunk) -> Tensor:
            mask = torch.zeros(relevance.shape[:2], dtype=relevance.dtype, device=relevance.device)
            mask[torch.arange(len(chunk)), chunk.to(relevance.device)] = 1
            return relevance * mask.view(*mask.shape, *[1] * (relevance.dim() - 2))

        batch = inputs.expand(len(chunk), *inputs.shape[1:])
        parts.append(propagate(model, batch, goal, chosen, masks={name: keep_only}).inputs)
    return torch.cat(parts)


def concept_relevance(model: Model | nn.Module, inputs: Tensor, target: TargetLike, layer: str | nn.Module, *,
                      top: int = 6, channels: Sequence[int] | None = None,
                      composite: str | Composite = "epsilon-plus-flat", batch_size: int | None = None
                      ) -> Concepts:
    """The ``top`` most relevant channels of ``layer`` (or the given ``channels``) for one picture and ``target``,
    each with its conditional heat map."""
    model = as_model(model)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive number of channels, got {top!r}")
    name = layer_name(model.net, layer)
    chosen = model_composite(model, composite)
    per_channel = channel_relevance(model, inputs, target, name, composite=chosen)[0]
    if channels is None:
        if top > len(per_channel):
            raise ValueError(f"top is at most the {len(per_channel)} channels of {name}, got {top}")
        picked = per_channel.argsort(descending=True)[:top].tolist()
    else:
        picked = [int(c) for c in channels]
        bad = [c for c in picked if not 0 <= c < per_channel.numel()]
        if bad:
            raise ValueError(f"channels {bad} do not exist: layer {name!r} has channels 0 … {per_channel.numel() - 1}")
    total = float(per_channel.sum())
    values = per_channel[picked]
    maps = conditional_relevance(model, inputs, target, name, picked, composite=chosen, batch_size=batch_size)
    share = values / per_channel.abs().sum().clamp_min(1e-12)
    return Concepts(name, picked, values.cpu(), share.cpu(), maps, total, chosen.name)
