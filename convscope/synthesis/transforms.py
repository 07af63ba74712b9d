"""Random transforms applied to the picture before each forward pass, so the optimised pattern
must survive small shifts, scalings and rotations (transformation robustness, Olah et al., 2017,
https://distill.pub/2017/feature-visualization/#regularizer-playground).

A transform is ``transform(images [B,3,H,W], generator) -> images``; every random draw
comes from the generator handed in, so a seeded generator repeats a run exactly. One
draw is shared by the whole batch (each image of a batch sees the same transform).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.synthesis.seeded import draw_index


class Transform:
    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Pad(Transform):
    """Pad every side by ``width`` pixels of a constant grey (or ``mode='reflect'``)."""

    width: int
    value: float = 0.5
    mode: str = "constant"

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.width <= 0:
            return images
        if self.mode == "constant":
            return F.pad(images, (self.width,) * 4, mode="constant", value=self.value)
        return F.pad(images, (self.width,) * 4, mode=self.mode)


@dataclass(frozen=True)
class Jitter(Transform):
    """Crop ``d`` pixels away at a random offset (the picture shrinks by ``d``)."""

    d: int

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.d <= 0:
            return images
        height, width = images.shape[-2:]
        if height <= self.d or width <= self.d:
            raise ValueError(f"jitter of {self.d} pixels does not fit a {height}x{width} image")
        dy, dx = draw_index(self.d + 1, generator), draw_index(self.d + 1, generator)
        return images[..., dy:dy + height - self.d, dx:dx + width - self.d]


@dataclass(frozen=True)
class Roll(Transform):
    """Shift the picture circularly by up to ``d`` pixels each way (DeepDream's jitter; size kept)."""

    d: int

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.d <= 0:
            return images
        dy, dx = draw_index(2 * self.d + 1, generator) - self.d, draw_index(2 * self.d + 1, generator) - self.d
        return torch.roll(images, shifts=(dy, dx), dims=(-2, -1))


@dataclass(frozen=True)
class RandomScale(Transform):
    """Resize by a factor drawn from ``scales`` (bilinear)."""

    scales: tuple[float, ...]

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        scale = self.scales[draw_index(len(self.scales), generator)]
        if scale == 1:
            return images
        height, width = images.shape[-2:]
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class RandomRotate(Transform):
    """Rotate by an angle in degrees drawn from ``angles`` about the centre (bilinear, border pixels outside)."""

    angles: tuple[float, ...]

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        angle = math.radians(self.angles[draw_index(len(self.angles), generator)])
        if angle == 0:
            return images
        cos, sin = math.cos(angle), math.sin(angle)
        height, width = images.shape[-2:]
        aspect = height / width
        theta = torch.tensor([[cos, -sin * aspect, 0.0], [sin / aspect, cos, 0.0]], dtype=images.dtype,
                             device=images.device)
        grid = F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class Compose(Transform):
    """Apply ``transforms`` in order."""

    transforms: tuple[Transform, ...]

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        for transform in self.transforms:
            images = transform(images, generator)
        return images


def compose(transforms: Transform | Sequence[Transform] | None) -> Transform:
    """One transform from a transform, a sequence of them, or ``None`` (identity)."""
    if transforms is None:
        return Compose(())
    if isinstance(transforms, Transform):
        return transforms
    items = tuple(transforms)
    for item in items:
        if not isinstance(item, Transform):
            raise TypeError(f"transforms are convscope.synthesis.transforms.Transform objects, got "
                            f"{type(item).__name__}")
    return Compose(items)


def standard(scale: float = 1.0) -> Compose:
    """Pad 12, jitter 8, scale 0.9–1.1, rotate ±10°, jitter 4 — pixel amounts multiplied by ``scale``
    (use a smaller ``scale`` for small pictures)."""
    def px(n: int) -> int:
        return max(1, round(n * scale))

    return Compose((Pad(px(12)), Jitter(px(8)), RandomScale(tuple(1 + (i - 5) / 50 for i in range(11))),
                    RandomRotate(tuple(float(a) for a in range(-10, 11))), Jitter(px(4))))


STANDARD = standard()


def strong(scale: float = 1.0) -> Compose:
    """Pad 16, jitter 16, scale 0.8–1.2, rotate ±15°, jitter 8 (pixel amounts × ``scale``): for class models,
    whose objects must hold up under larger changes than single features."""
    def px(n: int) -> int:
        return max(1, round(n * scale))

    return Compose((Pad(px(16)), Jitter(px(16)), RandomScale(tuple(0.8 + 0.04 * i for i in range(11))),
                    RandomRotate(tuple(float(a) for a in range(-15, 16))), Jitter(px(8))))
