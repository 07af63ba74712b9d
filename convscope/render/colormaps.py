"""Scaling values to [0, 1] and colouring them, on the tensor's device."""

from __future__ import annotations

import functools

import torch
from torch import Tensor


def normalize(values: Tensor, mode: str = "minmax", *, dims: int = 2, percentile: float = 99.5) -> Tensor:
    """Scale each map (the last ``dims`` dimensions) to [0, 1].

    ``minmax``: lowest → 0, highest → 1. ``symmetric``: 0 → 0.5, ±max|v| → 0/1 (signed
    data such as weights). ``percentile``: clips at the given percentile of |v| (robust
    to a few extreme pixels), 0 → 0. ``abs``: 0 → 0, max|v| → 1. A constant map becomes 0
    (or 0.5 for ``symmetric``). ``signed``: like ``symmetric`` but clipped at the
    percentile of |v|, for gradients whose few extreme values would hide the rest.
    """
    flat = values.detach().float().flatten(-dims) if dims else values.detach().float()[..., None]
    if mode == "minmax":
        low, high = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
        out = (flat - low) / (high - low).clamp_min(1e-12)
    elif mode == "symmetric":
        scale = flat.abs().amax(-1, keepdim=True).clamp_min(1e-12)
        out = 0.5 + 0.5 * flat / scale
    elif mode == "signed":
        scale = torch.quantile(flat.abs(), percentile / 100, dim=-1, keepdim=True).clamp_min(1e-12)
        out = 0.5 + 0.5 * (flat / scale).clamp(-1, 1)
    elif mode == "abs":
        out = flat.abs() / flat.abs().amax(-1, keepdim=True).clamp_min(1e-12)
    elif mode == "percentile":
        scale = torch.quantile(flat.abs(), percentile / 100, dim=-1, keepdim=True).clamp_min(1e-12)
        out = (flat / scale).clamp(0, 1)
    else:
        raise ValueError(f"unknown normalisation {mode!r}: use minmax, symmetric, signed, abs or percentile")
    return out.reshape(values.shape)


@functools.cache
def _lut(name: str) -> Tensor:
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError as error:
        raise ValueError(f"unknown colour map {name!r}: try inferno, viridis, magma, gray, coolwarm, jet") from error
    return torch.tensor(cmap(torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)


def colorize(values: Tensor, cmap: str = "inferno") -> Tensor:
    """Values in [0, 1] shaped ``[..., H, W]`` → colours ``[..., 3, H, W]`` from a matplotlib colour map."""
    lut = _lut(cmap).to(values.device)
    index = (values.clamp(0, 1) * 255).round().long()
    return lut[index].movedim(-1, -3)
