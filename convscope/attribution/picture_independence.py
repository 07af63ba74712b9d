"""Whether a method's map depends on the picture at all.

The deconvnet (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901) reads the picture only
through max-pooling's switches: on a network without max-pooling (EfficientNet-Lite) its map for
a class is the same for every picture — a fixed pattern of the network, not what the picture
contains. This is found out by running the method again on a seeded random input of the same
shape (with the same class per picture) and comparing; :data:`NOTE` says it in words wherever
such a map is shown (``explain``, ``compare``, the gallery, ``top-patches``, ``evolution``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.attribution.base import Attribution, copies_target, forward, image_classes
from convscope.targets import Target, TargetLike, as_target

NOTE = ("its map for a target is the same for every picture (it reads the picture only through max-pooling "
        "switches, and this network has none): a fixed pattern of the network, not of this picture; guided backprop "
        "shows what the picture contributed")


def other_input(inputs: Tensor) -> Tensor:
    """A seeded random input shaped like ``inputs`` (values in [-2, 2], as normalised pictures)."""
    noise = torch.rand(inputs.shape, generator=torch.Generator().manual_seed(0))
    return (noise * 4 - 2).to(inputs)


def same_maps(first: Tensor, second: Tensor, *, tolerance: float = 1e-4) -> bool:
    """True when every map of ``second`` equals the one of ``first`` to ``tolerance`` of its largest value."""
    flat_first, flat_second = first.detach().flatten(1).float(), second.detach().flatten(1).float()
    scale = flat_first.abs().amax(1).clamp_min(1e-12)
    return bool(((flat_first - flat_second).abs().amax(1) / scale < tolerance).all())


def ignores_pictures(method: Attribution, inputs: Tensor, target: TargetLike = None,
                     maps: Tensor | None = None) -> bool:
    """True when ``method``'s maps for ``inputs`` (a normalised batch) would be the same for any other picture.

    Only methods marked ``may_ignore_pictures`` (the deconvnet) are run again; for the others this is
    ``False`` at no cost. A class target keeps each picture's class on the other input. ``maps`` are the
    maps already computed for ``inputs``, if any.
    """
    if not getattr(method, "may_ignore_pictures", False):
        return False
    goal: Target = as_target(target, method.model)
    inputs = inputs.detach().to(method.model.device)
    classes = image_classes(goal, forward(method.model, inputs)[0])
    kept = copies_target(goal, classes, torch.arange(inputs.shape[0], device=inputs.device))
    first = maps if maps is not None else method(inputs, kept)
    return same_maps(first, method(other_input(inputs), kept))
