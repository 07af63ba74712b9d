"""Feature visualisation of many channels of one layer in one batch: per channel its picture, a negative
picture and a few diverse facets, all optimised together.

Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017,
https://distill.pub/2017/feature-visualization/ — Lucid/Lucent's recipe: a decorrelated Fourier
parameterisation, transformation robustness (pad, jitter, scale, rotate) and, for the facets, the
diversity term. Each batch element has its own objective: element ``i`` maximises (or, for the
negative, minimises) the mean activation of its channel; the facets of a channel also push their
Gram matrices apart within their group. No term couples two channels, so a channel's pictures do not
depend on which channels share its batch: they equal a run of that channel alone with the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.atlas.diversity import group_similarity
from convscope.atlas.pre_activation import pre_activation
from convscope.atlas.precision import PRECISIONS, in_precision
from convscope.atlas.seeds import seeded
from convscope.models.model import Model
from convscope.reprs import short_repr
from convscope.synthesis.loop import optimise
from convscope.synthesis.matching import layer_features
from convscope.synthesis.objectives import Evaluation, Objective
from convscope.synthesis.params import FourierImage, fourier
from convscope.synthesis.transforms import standard

LUMINANCE = (0.299, 0.587, 0.114)
SMALL = 64  # a model that reads pictures smaller than this (Fashion-MNIST's 28 px) gets pictures of its own size


@dataclass(frozen=True)
class Recipe:
    """How each channel's pictures are made (the same for every channel of a run)."""

    size: int = 128
    steps: int = 256
    lr: float = 0.05
    facets: int = 4
    diversity: float = 2.0  # weight of the facets' mean Gram similarity, in units of the channel's mean activation
    negative: bool = True
    seed: int = 0
    colours: int = 3  # 3: decorrelated RGB (Lucid's, for colour photos); 1: one grey channel, for a grey model
    precision: str = "float32"  # or "bfloat16": the model computes in bfloat16 (convscope.atlas.precision)

    def __post_init__(self) -> None:
        if self.colours not in (1, 3):
            raise ValueError(f"colours is 3 (decorrelated RGB) or 1 (one grey channel), got {self.colours!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def group(self) -> int:
        """Pictures per channel: the visualisation, the negative one, the facets."""
        return 1 + int(self.negative) + self.facets

    def settings(self) -> dict[str, object]:
        settings: dict[str, object] = {
            "size": self.size, "steps": self.steps, "lr": self.lr, "facets": self.facets,
            "diversity": self.diversity, "negative": self.negative, "seed": self.seed,
            "parameterisation": "fourier (decorrelated)" if self.colours == 3 else "fourier (one grey channel)",
            "transforms": f"standard({self.size}/128)",
            "objective": "mean of the channel (of softplus of a rectifier's input)"}
        if self.precision != "float32":  # absent for float32: atlases made before the setting existed resume
            settings["precision"] = self.precision
        return settings


def recipe_for(channels: int, side: int, **given: Any) -> Recipe:
    """The recipe for a model that reads ``channels`` colour channels at ``side`` pixels; ``given`` settings win.

    Lucid's recipe is made for colour photo models at 128 px and more, and is kept for them. A grey model gets one
    grey channel to optimise (decorrelated RGB would spend two of its three channels on colours the model never
    sees). A model that reads small pictures (below :data:`SMALL`, e.g. 28 px) gets pictures of its own size — at
    128 px the picture is a texture of many copies of a unit that sees a third of the input, and the optimisation
    barely moves — with the transforms scaled to it and a step of 0.2 (at 0.05 a Fashion-MNIST channel's
    objective rises by a sixth in 256 steps).
    """
    adapted: dict[str, Any] = {"colours": 1 if channels == 1 else 3}
    if side < SMALL:
        adapted |= {"size": side, "lr": 0.2}
    return Recipe(**{**adapted, **{key: value for key, value in given.items() if value is not None}})


@dataclass
class ChannelPictures:
    """For ``channels`` of ``layer``: ``positive`` and ``negative`` ``[n,3,H,W]``, ``facets`` ``[n,F,3,H,W]``
    in [0, 1] (CPU), and ``values`` ``[n,G]``: the channel's mean activation on each final picture, in the order
    positive, negative, facets."""

    __repr__ = short_repr

    layer: str
    channels: list[int]
    positive: Tensor
    negative: Tensor | None
    facets: Tensor
    values: Tensor
    responses: Tensor  # [n,C]: the mean of every channel of the layer on each channel's visualisation


def group_objective(layer: str, channels: Sequence[int], recipe: Recipe, *, rectified: bool = False) -> Objective:
    """One objective per batch element: ±(mean activation of its channel), minus the facets' diversity term.

    ``rectified``: the layer's activations are a rectifier's input; the positive pictures and facets then
    maximise the mean of its smooth version, softplus, which equals the rectifier's output up to < 0.7 and
    has a gradient where the channel is silent, so that it grows where the channel begins to respond instead
    of lifting every position alike; the negative picture minimises the input itself (what inhibits most).
    """
    group = recipe.group
    targets = torch.tensor([c for c in channels for _ in range(group)])
    signs = torch.tensor([1.0] + [-1.0] * int(recipe.negative) + [1.0] * recipe.facets).repeat(len(channels))
    facet = torch.tensor([False] * (group - recipe.facets) + [True] * recipe.facets).repeat(len(channels))

    def value(e: Evaluation) -> Tensor:
        acts = e.activation(layer).float()
        flat = acts.reshape(acts.shape[0], acts.shape[1], -1)
        index = targets.to(acts.device)[:, None]
        means = flat.mean(2).gather(1, index)[:, 0]
        if rectified:
            smooth = F.softplus(flat.gather(1, index[:, :, None].expand(-1, 1, flat.shape[2]))[:, 0]).mean(1)
            means = torch.where(signs.to(means) > 0, smooth, means)
        values = means * signs.to(means)
        if recipe.facets >= 2 and recipe.diversity:
            chosen = facet.to(acts.device)
            # the penalty is scaled by the facet's own activation (detached), so its weight reads the same on layers
            # whose activations are of any size
            scale = means[chosen].detach().abs().clamp_min(1e-3)
            penalty = recipe.diversity * scale * group_similarity(flat[chosen], recipe.facets)
            values = values.masked_scatter(chosen, values[chosen] - penalty)
        return values

    return Objective(value, (layer,), f"{layer}: {len(channels)} channels × {group}", reads_output=False)


def start_images(layer: str, channels: Sequence[int], recipe: Recipe) -> FourierImage:
    """Each channel's starting spectra, drawn from a generator of its own (seed, layer, channel)."""
    spectra = [fourier(recipe.size, recipe.group, generator=seeded(recipe.seed, layer, c)).spectrum.detach()
               for c in channels]
    first = fourier(recipe.size, 1)
    if recipe.colours == 1:  # one grey channel: pictures [B,1,H,W], read by a grey model as they are
        return FourierImage(torch.cat(spectra)[:, :1], recipe.size, recipe.size, first.decay_power, False)
    return FourierImage(torch.cat(spectra), recipe.size, recipe.size, first.decay_power, first.decorrelate)


def visualise_channels(model: Model, layer: str, channels: Sequence[int], recipe: Recipe, *,
                       model_size: tuple[int, int] | None = None, progress: bool = True) -> ChannelPictures:
    """The pictures of ``channels`` of ``layer`` made in one batch (``model`` on its device, a
    :func:`~convscope.atlas.working_copy.working_copy`: a rectifier at ``layer`` is optimised at its input, see
    :mod:`~convscope.atlas.pre_activation`). ``model_size``: the size a fixed-size model reads. ``values`` are
    read at the layer's output, in float32 whatever ``recipe.precision``."""
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("give at least one channel")
    param = start_images(layer, channels, recipe)
    computing = in_precision(model, recipe.precision)
    with pre_activation(computing.net, layer) as rectified:
        objective = group_objective(layer, channels, recipe, rectified=rectified)
        result = optimise(computing, objective, param, steps=recipe.steps, lr=recipe.lr,
                          transforms=standard(recipe.size / 128), generator=seeded(recipe.seed, layer, "transforms"),
                          model_size=model_size, progress=progress, description=f"{layer} ×{len(channels)}")
    images = result.images.expand(-1, 3, -1, -1).contiguous() if recipe.colours == 1 else result.images
    if model.preprocess.channels == 1 and recipe.colours == 3:  # a grey model sees the luminance: show that
        weights = torch.tensor(LUMINANCE).view(1, 3, 1, 1)
        images = (images * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    shown = images if model_size is None else F.interpolate(images, size=model_size, mode="bilinear",
                                                            align_corners=False)
    acts = layer_features(model, shown, [layer])[layer]
    means = acts.reshape(acts.shape[0], acts.shape[1], -1).mean(2)
    targets = torch.tensor([c for c in channels for _ in range(recipe.group)], device=means.device)
    values = means.gather(1, targets[:, None])[:, 0].cpu().view(len(channels), recipe.group)
    responses = means.view(len(channels), recipe.group, -1)[:, 0].float().cpu()
    grouped = images.view(len(channels), recipe.group, *images.shape[1:])
    negative = grouped[:, 1] if recipe.negative else None
    return ChannelPictures(layer, channels, grouped[:, 0], negative, grouped[:, recipe.group - recipe.facets:],
                           values, responses)
