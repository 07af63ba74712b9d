"""Heatmaps laid over the pictures they explain."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from convscope.render.colormaps import colorize, normalize


def upsample(maps: Tensor, size: tuple[int, ...]) -> Tensor:
    """Bilinear resize of ``[..., h, w]`` maps to ``size`` (leading dimensions kept)."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    return F.interpolate(flat, size=size, mode="bilinear", align_corners=False).reshape(*lead, *size)


def rgb(pictures: Tensor) -> Tensor:
    """Pictures ``[...,1|3,H,W]`` as colour ``[...,3,H,W]``: a grey picture (Fashion-MNIST) repeats its channel."""
    if pictures.dim() < 3 or pictures.shape[-3] not in (1, 3):
        raise ValueError(f"expected pictures [...,1|3,H,W], got {tuple(pictures.shape)}")
    return pictures.expand(*pictures.shape[:-3], 3, *pictures.shape[-2:]) if pictures.shape[-3] == 1 else pictures


def overlay(picture: Tensor, heat: Tensor, *, alpha: float = 0.5, cmap: str = "jet",
            mode: str = "minmax") -> Tensor:
    """Blend a heatmap ``[h,w]`` (any range; scaled with ``mode``) over ``picture`` ``[3,H,W]`` (or grey ``[1,H,W]``).

    Returns ``[3,H,W]`` in [0, 1]; neither input is modified.
    """
    if picture.dim() != 3 or picture.shape[0] not in (1, 3):
        raise ValueError(f"overlay needs a picture [3,H,W] or [1,H,W], got {tuple(picture.shape)}")
    picture = rgb(picture)
    heat = heat.detach().float().to(picture.device)
    if heat.dim() == 3 and heat.shape[0] == 1:
        heat = heat[0]
    if heat.dim() != 2:
        raise ValueError(f"overlay needs one heatmap [h,w] per picture, got {tuple(heat.shape)}")
    colours = colorize(normalize(upsample(heat, tuple(picture.shape[-2:])), mode), cmap)
    return ((1 - alpha) * picture.float() + alpha * colours).clamp(0, 1)
