"""Pictures with a known object location: a photo pasted onto a texture at a known box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.images import load_sample
from convscope.models.preprocessing import center_crop
from convscope.reprs import short_repr

OBJECTS = ("chelsea", "coffee", "flower")
BACKGROUNDS = ("brick", "grass", "gravel")


@dataclass
class PastedObjects:
    """``pictures`` ``[N,3,S,S]`` in [0, 1] at the model's input size; ``boxes`` ``(top, left, bottom, right)``."""

    __repr__ = short_repr

    pictures: Tensor
    boxes: list[tuple[int, int, int, int]]
    names: list[str]
    objects: list[str]

    def object_mask(self) -> Tensor:
        """``[N,S,S]`` True inside each box."""
        size = self.pictures.shape[-1]
        mask = torch.zeros(len(self.boxes), size, size, dtype=torch.bool)
        for i, (top, left, bottom, right) in enumerate(self.boxes):
            mask[i, top:bottom, left:right] = True
        return mask


def _square(picture: Tensor, side: int) -> Tensor:
    short = min(picture.shape[-2:])
    return F.interpolate(center_crop(picture, short)[None], size=(side, side), mode="bilinear",
                         antialias=True, align_corners=False)[0].clamp(0, 1)


def pasted_objects(size: int = 224, object_size: int | None = None, objects: Sequence[str] = OBJECTS,
                   backgrounds: Sequence[str] = BACKGROUNDS, per_pair: int = 2, seed: int = 0) -> PastedObjects:
    """Each object photo (centre square, ``object_size`` pixels; default 3/7 of ``size``, 96 on 224) on each
    texture at ``per_pair`` random places."""
    if object_size is None:
        object_size = max(1, size * 3 // 7)
    if not 0 < object_size <= size:
        raise ValueError(f"object_size must be in 1..{size}, got {object_size}")
    generator = torch.Generator().manual_seed(seed)
    pictures, boxes, names, kinds = [], [], [], []
    for background in backgrounds:
        canvas = _square(load_sample(background), size)
        for name in objects:
            thing = _square(load_sample(name), object_size)
            for _ in range(per_pair):
                top, left = torch.randint(0, size - object_size + 1, (2,), generator=generator).tolist()
                picture = canvas.clone()
                picture[:, top:top + object_size, left:left + object_size] = thing
                pictures.append(picture)
                boxes.append((top, left, top + object_size, left + object_size))
                names.append(f"{name} on {background}")
                kinds.append(name)
    return PastedObjects(torch.stack(pictures), boxes, names, kinds)
