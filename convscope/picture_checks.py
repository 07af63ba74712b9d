"""What a picture must be before convscope computes anything with it, checked once where it comes in.

A picture is a float ``[C,H,W]`` (C = 1, 3 or 4) with values in [0, 1]: not empty, no NaN or
infinity, at most :data:`MAX_PIXELS` pixels and a side ratio of at most :data:`MAX_ASPECT`.
``uint8`` tensors are divided by 255 and ``uint16`` by 65535 (by their type, never by their
content); other integer types are ambiguous and refused.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_PIXELS = 64_000_000  # 64 megapixels: a float [3,H,W] picture of 768 MB
MAX_ASPECT = 32  # long side ÷ short side; resizing the short side of a 1×8000 strip to 256 would need 6 GB
TOLERANCE = 1e-3  # float pictures this far outside [0, 1] (interpolation overshoot) are clamped, not refused
SCALES = {torch.uint8: 255.0, torch.bool: 1.0}
if hasattr(torch, "uint16"):
    SCALES[torch.uint16] = 65535.0


def check_dimensions(width: int, height: int, name: str = "picture") -> None:
    """A ``ValueError`` for an empty picture, one over :data:`MAX_PIXELS` or one thinner than 1 : :data:`MAX_ASPECT`."""
    if width < 1 or height < 1:
        raise ValueError(f"{name} is empty ({width}×{height} pixels)")
    if width * height > MAX_PIXELS:
        raise ValueError(f"{name} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), more than the "
                         f"{MAX_PIXELS / 1e6:g} megapixels convscope reads: make it smaller first")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT:
        raise ValueError(f"{name} is {width}×{height} pixels, a side ratio of {ratio:.0f}:1; convscope reads ratios up "
                         f"to {MAX_ASPECT}:1 (a model resizes the short side, which would make a huge picture): "
                         "crop it first")


def check_picture(image: object, name: str = "picture", *, channels: tuple[int, ...] = (1, 3, 4)) -> Tensor:
    """``image`` as a float ``[C,H,W]`` picture in [0, 1], or a one-line error saying what is wrong with it."""
    if not isinstance(image, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [C,H,W] in [0, 1], got {type(image).__name__}; "
                        "read files with convscope.load_image")
    if image.dim() != 3 or image.shape[0] not in channels:
        allowed = " or ".join(f"[{c},H,W]" for c in channels)
        raise ValueError(f"{name} must be shaped [C,H,W] ({allowed}), got {tuple(image.shape)}; "
                         "read files with convscope.load_image")
    check_dimensions(int(image.shape[2]), int(image.shape[1]), name)
    return check_values(image, name)


def check_values(image: Tensor, name: str = "picture") -> Tensor:
    """Scale integer pixels by their type's range; refuse NaN, infinity and floats outside [0, 1]."""
    if image.dtype in SCALES:
        return image.float() / SCALES[image.dtype]
    if not image.is_floating_point():
        raise TypeError(f"{name} has integer type {str(image.dtype).removeprefix('torch.')}, whose range is "
                        "ambiguous: give uint8 (0–255), uint16 (0–65535) or floats in [0, 1]")
    image = image.float()
    if not bool(torch.isfinite(image).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    low, high = (float(v) for v in torch.aminmax(image))
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        hint = "divide 0–255 values by 255" if high > 1 else "undo the normalisation first"
        raise ValueError(f"{name} has values from {low:.3g} to {high:.3g}, outside [0, 1]: pictures are floats "
                         f"in [0, 1] ({hint}; methods such as GradCAM take normalised inputs from "
                         "model.prepare)")
    return image.clamp(0, 1) if low < 0 or high > 1 else image
