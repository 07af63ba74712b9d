"""Building attribution methods by name for the studies, and their maps as comparable heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from convscope.analysis.passes import pictures_per_pass
from convscope.hooks import inspection_mode
from convscope.models.model import Model
from convscope.suggestions import chosen_names
from convscope.targets import ClassProbability, ClassScore, Target, TargetLike, as_target

# Methods cheap enough to run many times over (every randomisation stage, every image) on a CPU. Score-CAM is
# left out: it needs one forward pass per channel of its layer (1280 on EfficientNet-Lite0) — ask for it by name.
QUICK_METHODS = ("occlusion", "saliency", "deconvnet", "guided_backprop", "cam", "grad_cam", "guided_grad_cam",
                 "grad_cam_plus_plus", "layer_cam", "smooth_grad", "integrated_gradients")
# Lighter settings for repeated runs; a user can pass any options of their own.
QUICK_OPTIONS: dict[str, dict[str, Any]] = {"smooth_grad": {"samples": 16}, "integrated_gradients": {"steps": 16},
                                            "occlusion": {"size": 48, "stride": 24}}


def method_names(names: Sequence[str] | None) -> list[str]:
    from convscope.attribution import METHODS

    return chosen_names(names, QUICK_METHODS, METHODS, "attribution method", "methods")


def build(name: str, model: Model, options: Mapping[str, Mapping[str, Any]] | None = None):
    """The attribution method ``name`` on ``model`` with ``options[name]`` (quick settings by default)."""
    from convscope.attribution import METHODS

    settings = dict(QUICK_OPTIONS.get(name, {}))
    settings.update((options or {}).get(name, {}))
    return METHODS[name](model, **settings)


def heatmaps(method, inputs: Tensor, target) -> Tensor:
    """Non-negative importance ``[B,H,W]`` at the input resolution (bright = important), explained a few
    pictures at a time (:func:`~convscope.analysis.passes.pictures_per_pass`) when ``target`` allows it."""
    size = tuple(inputs.shape[-2:])
    step = pictures_per_pass(None, inputs.shape, inputs.device)
    parts = [(inputs[i:i + step], _rows(target, i, i + step, len(inputs))) for i in range(0, len(inputs), step)]
    if len(parts) == 1 or any(t is None for _, t in parts):
        return method.heat(method(inputs, target), size)
    return torch.cat([method.heat(method(x, t), size) for x, t in parts])


def _rows(target, start: int, stop: int, count: int):
    """``target`` for pictures ``start:stop`` of ``count``: the same when it names one class or none for all,
    its slice when it names one class per picture, ``None`` when it cannot be split."""
    if isinstance(target, int | str) or target is None:
        return target
    if type(target) in (ClassScore, ClassProbability):
        if isinstance(target.index, int):
            return target
        if len(target.index) == count:
            return replace(target, index=tuple(target.index[start:stop]))
    return None


def fixed_target(model: Model, inputs: Tensor, target: TargetLike = None) -> tuple[Target, Tensor | None]:
    """``target`` with its classes fixed on the clean ``inputs``, and those classes (``None`` when it is no class).

    A randomised copy, a retrained twin or a masked picture is then explained for the same class as
    the original (``'top'`` does not drift). The model is left as found.
    """
    goal = as_target(target, model)
    with inspection_mode(model.net), torch.no_grad():
        classes = goal.classes(model.net(inputs))
    return (ClassScore(tuple(classes.tolist())) if classes is not None else goal), classes
