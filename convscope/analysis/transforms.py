"""Geometric transforms of picture batches: translation, scaling, rotation (with a constant fill)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

TRANSFORMS = ("translate", "scale", "rotate")


def transform_batch(pictures: Tensor, kind: str, amounts: Tensor, fill: float = 0.5) -> Tensor:
    """Apply one transform per amount to every picture: ``[N,C,H,W]`` → ``[N,A,C,H,W]``.

    ``translate``: vertical shift in pixels (positive = down); ``scale``: zoom factor about
    the centre; ``rotate``: degrees counter-clockwise. Uncovered pixels get ``fill``.
    """
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}: use one of {', '.join(TRANSFORMS)}")
    count, channels, height, width = pictures.shape
    amounts = amounts.to(pictures.device, pictures.dtype)
    theta = torch.zeros(len(amounts), 2, 3, device=pictures.device, dtype=pictures.dtype)
    if kind == "translate":
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 1, 2] = -2 * amounts / height
    elif kind == "scale":
        if (amounts <= 0).any():
            raise ValueError("scale factors must be positive")
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / amounts
    else:
        radians = amounts * math.pi / 180
        aspect = height / width
        theta[:, 0, 0] = torch.cos(radians)
        theta[:, 0, 1] = -torch.sin(radians) * aspect
        theta[:, 1, 0] = torch.sin(radians) / aspect
        theta[:, 1, 1] = torch.cos(radians)
    grid = F.affine_grid(theta, [len(amounts), channels, height, width], align_corners=False)
    shifted = (pictures - fill)[:, None].expand(-1, len(amounts), -1, -1, -1).reshape(-1, channels, height, width)
    grid = grid.repeat(count, 1, 1, 1)
    moved = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (moved + fill).reshape(count, len(amounts), channels, height, width)
