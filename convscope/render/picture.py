"""A finished picture: saves itself as PNG and shows itself in a notebook."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


class Picture:
    """An RGB picture, kept as a ``uint8`` array ``[H,W,3]``."""

    def __init__(self, pixels: Tensor | np.ndarray | Image.Image) -> None:
        if isinstance(pixels, Image.Image):
            array = np.asarray(pixels.convert("RGB"))
        elif isinstance(pixels, Tensor):
            array = to_uint8(pixels)
        else:
            array = np.asarray(pixels)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"a Picture is uint8 [H,W,3], got {array.dtype} {array.shape}")
        self.array = np.ascontiguousarray(array)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.array.shape[1], self.array.shape[0]

    def to_pil(self) -> Image.Image:
        """The picture as a PIL image."""
        return Image.fromarray(self.array)

    def save(self, path: str | Path) -> Path:
        """Save as PNG (or the format of the suffix), creating the folder; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.to_pil().save(path)
        return path

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.to_pil().save(buffer, format="PNG")
        return buffer.getvalue()

    def __repr__(self) -> str:
        return f"Picture({self.size[0]}x{self.size[1]})"


def to_uint8(image: Tensor) -> np.ndarray:
    """``[3,H,W]`` or ``[1,H,W]`` / ``[H,W]`` values in [0, 1] → ``uint8 [H,W,3]`` (clipped)."""
    image = image.detach().float()
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected [3,H,W], [1,H,W] or [H,W] values in [0, 1], got {tuple(image.shape)}")
    image = image.expand(3, -1, -1)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
