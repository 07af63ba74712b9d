"""``aug_smooth``: test-time augmentation of a CAM, as pytorch-grad-cam's option (its ``ttach`` transforms).

The map is computed on six copies of each picture — as it is and mirrored left to right, each
multiplied by 0.9, 1 and 1.1 (the normalised input, as pytorch-grad-cam's ``tta.Multiply``). As
pytorch-grad-cam finishes every map, each copy's map is rectified, scaled to [0, 1] (minus its
minimum, over its maximum), resized bilinearly to the input and scaled again; the mirrored ones are
mirrored back and the six averaged: ``[B,1,H,W]`` at the input's resolution, in [0, 1]. (pytorch-grad-cam
divides by the maximum + 1e-7, which changes nothing but maps whose maximum is near 1e-7.)
A class target keeps the class found on the picture itself (pytorch-grad-cam with
``targets=None`` takes each copy's own top class).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from convscope.attribution.base import batch_size_for, copies_target, forward, image_classes
from convscope.render.overlay import upsample
from convscope.targets import Neuron, Target

if TYPE_CHECKING:
    from convscope.attribution.base import Attribution

FLIPS = (False, True)
FACTORS = (0.9, 1.0, 1.1)


def check_aug_smooth(value: object) -> bool:
    """``value`` when it is ``True`` or ``False``, else a ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"aug_smooth= is True or False, got {value!r}")
    return value


def augmented(method: Attribution, inputs: Tensor, target: Target) -> Tensor:
    """``method``'s maps ``[B,1,h,w]`` averaged over the six augmented copies of each picture (see the module)."""
    if isinstance(target, Neuron):
        raise ValueError("aug_smooth mirrors the picture, which moves a neuron to another position; explain a "
                         "class or a Channel (its mean over all positions), or leave aug_smooth out")
    output, _ = forward(method.model, inputs, target.layers)
    if not isinstance(output, Tensor) or output.dim() != 2:
        raise ValueError("aug_smooth mirrors the picture, which also mirrors a segmentation or detection output "
                         "and moves what the target reads; use it on classifiers, or leave it out")
    classes = image_classes(target, output)
    batch = inputs.shape[0]
    size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    plans = [(flip, factor) for flip in FLIPS for factor in FACTORS]
    per_call = max(1, batch_size_for(None, inputs.device) // batch)  # copies of the whole batch per call
    sums = []
    for start in range(0, len(plans), per_call):
        part = plans[start:start + per_call]
        copies = torch.cat([(inputs.flip(-1) if flip else inputs) * factor for flip, factor in part])
        images = torch.arange(len(copies), device=inputs.device) % batch
        maps = method._attribute(copies, copies_target(target, classes, images)).float()
        maps = scaled(upsample(scaled(maps.clamp_min(0)), size)).unflatten(0, (len(part), batch))
        flips = torch.tensor([flip for flip, _ in part], device=maps.device).view(-1, *[1] * (maps.dim() - 1))
        sums.append(torch.where(flips, maps.flip(-1), maps).sum(0))
    return torch.stack(sums).sum(0) / len(plans)


def scaled(maps: Tensor) -> Tensor:
    """Each map minus its minimum, over its maximum (a constant map becomes 0)."""
    flat = maps.flatten(1)
    shifted = flat - flat.amin(1, keepdim=True)
    top = shifted.amax(1, keepdim=True)
    return (shifted / top.where(top > 0, torch.ones_like(top))).reshape(maps.shape)
