"""Pictures in: files (JPEG, PNG, grayscale, RGBA, 16-bit, any size), folders and bundled samples.

A picture is a float tensor ``[3,H,W]`` with values in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from convscope.suggestions import unknown

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

SKIMAGE_SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "cat", "camera", "coins", "moon", "hubble_deep_field",
                   "immunohistochemistry", "colorwheel", "page", "text", "brick", "grass", "gravel", "retina")
SKLEARN_SAMPLES = ("china", "flower")
SAMPLES = SKIMAGE_SAMPLES + SKLEARN_SAMPLES
TEXTURE_SAMPLES = ("brick", "grass", "gravel")


class NamedPicture(NamedTuple):
    name: str
    pixels: Tensor


def sample_names() -> list[str]:
    """Names usable as ``sample:NAME``: scikit-image's and scikit-learn's bundled photos."""
    return list(SAMPLES)


def load_sample(name: str) -> Tensor:
    """A bundled photo as ``[3,H,W]`` in [0, 1], e.g. ``load_sample('chelsea')``."""
    if name in SKIMAGE_SAMPLES:
        import skimage.data

        array = getattr(skimage.data, name)()
    elif name in SKLEARN_SAMPLES:
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    else:
        raise unknown("sample", name, SAMPLES, hint="the samples are " + ", ".join(SAMPLES))
    return array_to_picture(np.asarray(array))


def array_to_picture(array: np.ndarray) -> Tensor:
    """``[H,W]``, ``[H,W,3]`` or ``[H,W,4]`` array (uint8, uint16, bool or float in [0,1]) → ``[3,H,W]``."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an image array shaped [H,W], [H,W,3] or [H,W,4], got {array.shape}")
    if array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        values = array.astype(np.float32) / (65535.0 if array.max(initial=0) > 255 else 255.0)
    else:
        values = np.clip(array.astype(np.float32), 0, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(values))
    if tensor.dim() == 2:
        tensor = tensor[..., None]
    if tensor.shape[2] == 4:
        alpha = tensor[..., 3:]
        tensor = tensor[..., :3] * alpha + (1 - alpha)  # composite on white
    if tensor.shape[2] == 1:
        tensor = tensor.expand(-1, -1, 3)
    return tensor.permute(2, 0, 1).contiguous()


def pil_to_picture(image: Image.Image) -> Tensor:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return array_to_picture(np.asarray(image).astype(np.uint16 if image.mode != "I" else np.int64))
    if image.mode == "F":
        return array_to_picture(np.asarray(image))
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
    return array_to_picture(np.asarray(image))


def load_image(source: str | Path | Image.Image | np.ndarray | Tensor) -> Tensor:
    """One picture ``[3,H,W]`` in [0, 1] from a file path, ``'sample:NAME'``, a PIL image, array or tensor."""
    if isinstance(source, Tensor):
        if source.dim() == 2:
            source = source[None]
        if source.dim() != 3 or source.shape[0] not in (1, 3):
            raise ValueError(f"a picture tensor is [3,H,W] or [1,H,W] in [0, 1], got {tuple(source.shape)}")
        return source.float().expand(3, -1, -1)
    if isinstance(source, np.ndarray):
        return array_to_picture(source)
    if isinstance(source, Image.Image):
        return pil_to_picture(source)
    text = str(source)
    if text.startswith("sample:"):
        return load_sample(text.removeprefix("sample:"))
    path = Path(text)
    if not path.exists():
        hint = f"; bundled photos are named sample:NAME ({', '.join(SAMPLES[:6])} …)" if "/" not in text else ""
        raise ValueError(f"image file {text!r} does not exist{hint}")
    if path.is_dir():
        raise ValueError(f"{text!r} is a folder: use load_images for folders")
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_picture(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image file {text!r}: {error} (is it a JPEG/PNG and complete?)") from error


def load_image_bytes(data: bytes, name: str = "upload", *, max_pixels: int | None = None) -> Tensor:
    """One picture ``[3,H,W]`` in [0, 1] from the bytes of an image file (an upload).

    With ``max_pixels``, a larger picture is refused from its header, before it is decoded.
    """
    import io

    try:
        with Image.open(io.BytesIO(data)) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ValueError(f"{name!r} is {image.width}×{image.height} pixels, more than the "
                                 f"{max_pixels / 1e6:g} megapixels allowed; send a smaller picture")
            image.load()
            return pil_to_picture(image)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read {name!r} as an image: {error} (is it a JPEG/PNG and complete?)") from error


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[str]:
    """File paths and ``sample:`` names, with folders expanded to their images (recursively, sorted)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    expanded: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"folder {str(path)!r} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            expanded.extend(str(p) for p in files)
        else:
            expanded.append(str(source))
    return expanded


def load_images(sources: str | Path | Sequence[str | Path]) -> list[NamedPicture]:
    """Every picture named by ``sources`` (files, folders, ``sample:`` names), with its name."""
    return [NamedPicture(_display_name(s), load_image(s)) for s in expand_sources(sources)]


def _display_name(source: str) -> str:
    return source.removeprefix("sample:") if source.startswith("sample:") else Path(source).stem
