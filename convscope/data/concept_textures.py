"""A concept set made on the spot: striped, dotted, chequered and zig-zag textures and colour patches.

Each picture is drawn from its own random period, orientation, phase and pair of colours
(a seeded generator: the same set every time), so a concept is the *pattern*, not one
picture. Random sets are crops of the bundled photos (:class:`~convscope.data.crops.SampleCrops`).
These are stand-ins to run TCAV offline, not the curated sets of Kim et al. 2018.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from convscope.suggestions import unknown

COLOURS = {"red": (0.85, 0.1, 0.1), "green": (0.1, 0.65, 0.15), "blue": (0.1, 0.2, 0.85), "yellow": (0.95, 0.85, 0.1)}


def _grid(size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, float]:
    """Rotated pixel coordinates ``(u, v)`` ``[size,size]`` and a random period in pixels."""
    angle = float(torch.rand(1, generator=generator)) * math.pi
    period = size / (4 + 10 * float(torch.rand(1, generator=generator)))
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    shift = float(torch.rand(1, generator=generator)) * period
    u = x * math.cos(angle) + y * math.sin(angle) + shift
    v = -x * math.sin(angle) + y * math.cos(angle) + shift
    return u, v, period


def _stripes(u: Tensor, v: Tensor, period: float, generator: torch.Generator) -> Tensor:
    return (torch.remainder(u, period) < period / 2).float()


def _dots(u: Tensor, v: Tensor, period: float, generator: torch.Generator) -> Tensor:
    radius = period * (0.2 + 0.15 * float(torch.rand(1, generator=generator)))
    du, dv = torch.remainder(u, period) - period / 2, torch.remainder(v, period) - period / 2
    return ((du**2 + dv**2) < radius**2).float()


def _chequered(u: Tensor, v: Tensor, period: float, generator: torch.Generator) -> Tensor:
    return torch.remainder(torch.floor(u / period) + torch.floor(v / period), 2)


def _zigzag(u: Tensor, v: Tensor, period: float, generator: torch.Generator) -> Tensor:
    wave = period * (0.5 + float(torch.rand(1, generator=generator)))
    triangle = torch.abs(torch.remainder(v / wave, 2) - 1) * wave
    return (torch.remainder(u + triangle, period) < period / 2).float()


PATTERNS: dict[str, Callable[[Tensor, Tensor, float, torch.Generator], Tensor]] = {
    "stripes": _stripes, "dots": _dots, "chequered": _chequered, "zigzag": _zigzag}
CONCEPTS = (*PATTERNS, *COLOURS)


def concept_pictures(name: str, count: int = 30, *, size: int = 224, seed: int = 0) -> list[Tensor]:
    """``count`` pictures ``[3,size,size]`` in [0, 1] of the concept ``name`` (see :data:`CONCEPTS`)."""
    if name not in CONCEPTS:
        raise unknown("built-in concept", name, CONCEPTS)
    generator = torch.Generator().manual_seed(seed * 1000 + CONCEPTS.index(name))
    return [_picture(name, size, generator) for _ in range(count)]


def _picture(name: str, size: int, generator: torch.Generator) -> Tensor:
    if name in COLOURS:  # a colour in soft patches of varying brightness
        field = torch.nn.functional.interpolate(torch.rand(1, 1, 6, 6, generator=generator), size=(size, size),
                                                mode="bicubic", align_corners=False)[0].clamp(0, 1)
        base = torch.tensor(COLOURS[name]).view(3, 1, 1)
        return (base * (0.55 + 0.45 * field) + 0.04 * torch.randn(3, size, size, generator=generator)).clamp(0, 1)
    u, v, period = _grid(size, generator)
    mask = PATTERNS[name](u, v, period, generator)
    dark = torch.rand(3, generator=generator) * 0.35
    light = 0.65 + torch.rand(3, generator=generator) * 0.35
    picture = dark.view(3, 1, 1) + (light - dark).view(3, 1, 1) * mask
    return (picture + 0.03 * torch.randn(3, size, size, generator=generator)).clamp(0, 1)


def random_sets(count: int, per_set: int, *, seed: int = 0) -> list[list[Tensor]]:
    """``count`` random sets of ``per_set`` crops of the bundled photos, drawn without replacement within a set."""
    from convscope.data.crops import SampleCrops

    pool = SampleCrops()
    generator = torch.Generator().manual_seed(seed)
    return [[pool.picture(int(i)) for i in torch.randperm(len(pool), generator=generator)[:per_set]]
            for _ in range(count)]
