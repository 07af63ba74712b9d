"""DeepDream (Mordvintsev, Olah & Tyka, 2015, https://research.google/blog/inceptionism-going-deeper-into-neural-networks/).

Amplify what a layer sees in a photo: gradient ascent on ½‖a‖² (whose gradient at the
layer is the activation itself), with normalised steps, random circular shifts, and
octaves — the photo is processed from a small scale up, carrying the added detail
from one octave to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.models.model import Model, as_model
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.loop import optimise
from convscope.synthesis.objectives import Objective, activation_norm, channel
from convscope.synthesis.params import from_image
from convscope.synthesis.texture import _picture, resize_short_side
from convscope.synthesis.transforms import Roll
from convscope.validation import picture_side

MIN_OCTAVE_SIDE = 16  # the smallest octave a network with a few poolings still reads


@dataclass
class DreamResult:
    """The dreamed ``image`` ``[3,H,W]`` of ``original``; ``gains[o]`` is the objective's rise in octave o."""

    __repr__ = short_repr

    original: Tensor
    image: Tensor
    layer: str
    gains: list[float]
    settings: dict

    def picture(self, tile_size: int = 320) -> Picture:
        """The photo next to its dream, titled with the settings and the objective's rise per octave."""
        body = stack([grid(self.original[None], labels=["photo"], tile_size=tile_size),
                      grid(self.image[None], labels=[f"dream at {self.layer}"], tile_size=tile_size)], gap=8)
        gains = ", ".join(f"×{g:.1f}" for g in self.gains)
        return titled(body, f"DeepDream at {self.layer}",
                      f"{self.settings['octaves']} octaves × {self.settings['steps']} steps; objective rise per "
                      f"octave {gains}")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def dream(model: Model | nn.Module, picture: Tensor, layer: str, *, channel_index: int | None = None,
          size: int | None = 320, octaves: int = 4, octave_scale: float = 1.4, steps: int = 10, lr: float = 0.01,
          jitter: int = 16, generator: torch.Generator | None = None, progress: bool = True) -> DreamResult:
    """DeepDream of ``picture`` (``[3,H,W]`` in [0, 1]) at ``layer`` (or one channel of it).

    ``size`` is the short side of the result (``None`` keeps the photo's); each of the
    ``octaves`` is ``octave_scale`` times larger than the one before; ``steps`` normalised
    gradient steps of ``lr`` (in [0, 1] pixel units) per octave with circular shifts of up
    to ``jitter`` pixels.
    """
    model = as_model(model)
    model.layer(layer)
    if octaves < 1 or octave_scale < 1:
        raise ValueError(f"octaves must be ≥ 1 and octave_scale ≥ 1, got {octaves} and {octave_scale}")
    photo = _picture(picture)
    if size is not None:
        photo = resize_short_side(photo, picture_side(size))
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    objective: Objective = activation_norm(layer) if channel_index is None else channel(layer, channel_index)
    height, width = photo.shape[-2:]
    _check_octaves(octaves, octave_scale, min(height, width))
    shapes = [(max(1, round(height / octave_scale ** o)), max(1, round(width / octave_scale ** o)))
              for o in reversed(range(octaves))]
    base = photo[None].to(model.device)
    detail = torch.zeros(1, 3, *shapes[0], device=model.device)
    gains = []
    for number, shape in enumerate(shapes):
        octave_base = F.interpolate(base, size=shape, mode="area") if shape != (height, width) else base
        detail = F.interpolate(detail, size=shape, mode="bilinear", align_corners=False)
        start = (octave_base + detail).clamp(0, 1)
        result = optimise(model, objective, from_image(start), steps=steps, lr=lr, optimizer="normalised",
                          transforms=[Roll(jitter)], generator=generator, progress=progress,
                          description=f"dream octave {number + 1}/{octaves}")
        gains.append(float(result.losses[-1].mean() / result.losses[0].mean().clamp_max(-1e-12)))
        detail = result.images.to(model.device) - octave_base
    image = (base + detail).clamp(0, 1)[0].cpu()
    settings = {"octaves": octaves, "octave_scale": octave_scale, "steps": steps, "lr": lr, "jitter": jitter,
                "size": (height, width), "channel": channel_index}
    return DreamResult(photo.cpu(), image, layer, gains, settings)


def _check_octaves(octaves: int, scale: float, short_side: int) -> None:
    """Refuse octaves whose first picture would be smaller than :data:`MIN_OCTAVE_SIDE` (or vanish)."""
    if scale == 1 or short_side < MIN_OCTAVE_SIDE:
        return
    most = 1 + math.floor(math.log(short_side / MIN_OCTAVE_SIDE) / math.log(scale))
    if octaves > most:
        raise ValueError(f"{octaves} octaves of ×{scale:g} would shrink the {short_side}-pixel photo below "
                         f"{MIN_OCTAVE_SIDE} pixels in the first octaves: use at most {most} octaves at this size "
                         "(or a larger size)")
