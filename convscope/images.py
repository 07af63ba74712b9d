"""Pictures in: files (JPEG, PNG, TIFF, greyscale, palette, RGBA, 16-bit, any size), folders and bundled samples.

Files are turned upright as their EXIF orientation says, as every image viewer shows them.

A picture is a float tensor ``[3,H,W]`` with values in [0, 1].
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from convscope.picture_checks import check_dimensions, check_picture, check_values
from convscope.suggestions import unknown

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

SKIMAGE_SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "camera", "coins", "moon", "hubble_deep_field",
                   "immunohistochemistry", "colorwheel", "page", "text", "brick", "grass", "gravel", "retina")
SKLEARN_SAMPLES = ("china", "flower")
SAMPLES = SKIMAGE_SAMPLES + SKLEARN_SAMPLES  # each a different photo
ORIENTATION = 0x0112  # the EXIF tag that says how to turn the stored pixels to show the picture upright
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")  # unsigned 16-bit greyscale: divided by 65535
SAMPLE_ALIASES = {"cat": "chelsea"}  # scikit-image's data.cat() is the same photo as data.chelsea()
TEXTURE_SAMPLES = ("brick", "grass", "gravel")


class NamedPicture(NamedTuple):
    """A picture ``pixels`` ``[3,H,W]`` in [0, 1] with the name it was loaded by."""
    name: str
    pixels: Tensor


def sample_names() -> list[str]:
    """Names usable as ``sample:NAME``: scikit-image's and scikit-learn's bundled photos."""
    return list(SAMPLES)


def load_sample(name: str) -> Tensor:
    """A bundled photo as ``[3,H,W]`` in [0, 1], e.g. ``load_sample('chelsea')`` (``'cat'`` is the same photo)."""
    name = SAMPLE_ALIASES.get(name, name)
    if name in SKIMAGE_SAMPLES:
        import skimage.data

        array = getattr(skimage.data, name)()
    elif name in SKLEARN_SAMPLES:
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    else:
        raise unknown("sample", name, SAMPLES, hint="the samples are " + ", ".join(SAMPLES))
    return array_to_picture(np.asarray(array))


def array_to_picture(array: np.ndarray, name: str = "picture") -> Tensor:
    """``[H,W]``, ``[H,W,1]``, ``[H,W,3]`` or ``[H,W,4]`` array → ``[3,H,W]`` in [0, 1].

    uint8 is divided by 255 and uint16 by 65535 (by type, not content); bool and floats in
    [0, 1] are taken as they are; other types, NaN and floats outside [0, 1] are refused.
    """
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected an image array shaped [H,W], [H,W,3] or [H,W,4], got {array.shape}")
    check_dimensions(int(array.shape[1]), int(array.shape[0]), name)
    if array.dtype.kind == "u" and array.dtype.itemsize == 2:  # uint16 of either byte order: scaled here
        values = torch.from_numpy(array.astype(np.float32) / 65535.0)
    elif array.dtype in (np.uint8, np.bool_) or np.issubdtype(array.dtype, np.floating):
        native = array.astype(array.dtype.newbyteorder("="), copy=True)  # a writable copy in this machine's order
        values = check_values(torch.from_numpy(native), name)
    else:
        raise TypeError(f"{name} has integer type {array.dtype}, whose range is ambiguous: give uint8 (0–255), "
                        "uint16 (0–65535) or floats in [0, 1]")
    tensor = values if values.dim() == 3 else values[..., None]
    if tensor.shape[2] == 4:
        alpha = tensor[..., 3:]
        tensor = tensor[..., :3] * alpha + (1 - alpha)  # composite on white
    if tensor.shape[2] == 1:
        tensor = tensor.expand(-1, -1, 3)
    return tensor.permute(2, 0, 1).contiguous()


def pil_to_picture(image: Image.Image, name: str = "picture") -> Tensor:
    """A PIL image → ``[3,H,W]`` in [0, 1], turned upright as its EXIF orientation says (as image viewers show it).

    16-bit modes are divided by 65535; palette, greyscale-with-alpha, CMYK and other modes are
    converted to RGB (through their palette), and anything transparent is composited on white.
    32-bit and signed integer pixels (mode ``'I'``) have no agreed range and are refused.
    """
    if image.getexif().get(ORIENTATION, 1) != 1:  # most pictures are upright: no copy for them
        image = ImageOps.exif_transpose(image)  # a turned copy; the caller's image is left as it was
    check_dimensions(image.width, image.height, name)
    if image.mode in SIXTEEN_BIT_MODES:
        return array_to_picture(np.asarray(image), name)
    if image.mode.startswith("I"):
        values = np.asarray(image)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        raise TypeError(f"{name} holds 32-bit or signed integer pixels (mode {image.mode}, values {low} to {high}), "
                        "whose range is ambiguous (0–255? 0–65535? 0–2³²−1?): save it as 8-bit, 16-bit unsigned or "
                        "floats in [0, 1]")
    if image.mode == "F":
        return array_to_picture(np.asarray(image), name)
    transparent = image.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info
    try:
        if image.mode == "La":  # premultiplied alpha: Pillow converts it to RGBA only through LA
            image = image.convert("LA")
        if transparent and image.mode != "RGBA":
            image = image.convert("RGBA")  # a palette or colour key's transparency becomes alpha
        elif not transparent and image.mode not in ("RGB", "L", "1"):
            image = image.convert("RGB")  # a palette through its colours; CMYK, YCbCr, LAB, HSV
    except ValueError as error:
        raise ValueError(f"{name} has pixel mode {image.mode}, which Pillow cannot convert to RGB ({error}); "
                         "save it as RGB, RGBA or greyscale") from error
    return array_to_picture(np.asarray(image), name)


def load_image(source: str | Path | Image.Image | np.ndarray | Tensor) -> Tensor:
    """One picture ``[3,H,W]`` in [0, 1] from a file path, ``'sample:NAME'``, a PIL image, array or tensor.

    Tensors are ``[3,H,W]``/``[1,H,W]``/``[H,W]`` floats in [0, 1] or uint8 (÷255); files are refused
    with a one-line ``ValueError`` when missing, not regular files, unreadable, empty, over
    :data:`~convscope.picture_checks.MAX_PIXELS` or thinner than 1 : :data:`~convscope.picture_checks.MAX_ASPECT`.
    """
    if isinstance(source, Tensor):
        if source.dim() == 2:
            source = source[None]
        return check_picture(source, "picture tensor", channels=(1, 3)).expand(3, -1, -1)
    if isinstance(source, np.ndarray):
        return array_to_picture(source)
    if isinstance(source, Image.Image):
        return pil_to_picture(source)
    if not isinstance(source, (str, Path)):
        raise TypeError(f"a picture is a file path, 'sample:NAME', a PIL image, an array or a tensor; "
                        f"got {type(source).__name__}")
    text = str(source)
    if text.startswith("sample:"):
        return load_sample(text.removeprefix("sample:"))
    path = Path(text)
    if not path.exists():
        hint = f"; bundled photos are named sample:NAME ({', '.join(SAMPLES[:6])} …)" if "/" not in text else ""
        raise ValueError(f"image file {text!r} does not exist{hint}")
    if path.is_dir():
        raise ValueError(f"{text!r} is a folder: use load_images for folders")
    if not path.is_file():  # a FIFO or device would block or never end
        raise ValueError(f"{text!r} is not a regular file (a pipe, device or socket): give an image file")
    return _decode(path, f"image file {text!r}")


def load_image_bytes(data: bytes, name: str = "upload", *, max_pixels: int | None = None,
                     short_side: int | None = None) -> Tensor:
    """One picture ``[3,H,W]`` in [0, 1] from the bytes of an image file (an upload), with :func:`load_image`'s checks.

    With ``max_pixels``, a larger picture is refused from its header, before it is decoded. With ``short_side``,
    a picture whose short side is at least twice that is shrunk by a whole factor while it is decoded (a JPEG
    decodes at 1/2, 1/4 or 1/8 of its size; other formats are box-averaged) to a short side of at least
    ``short_side``: the float picture kept is then small whatever the file's size.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name!r}: expected the bytes of an image file, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name!r} is empty (0 bytes)")
    return _decode(io.BytesIO(bytes(data)), repr(name), max_pixels=max_pixels, short_side=short_side)


def _shrunk(image: Image.Image, short_side: int) -> Image.Image:
    """``image`` decoded at a short side of at least ``short_side``, by a whole factor (JPEG draft, then reduce)."""
    factor = min(image.size) // short_side
    if factor < 2:
        return image
    image.draft("RGB" if image.mode in ("RGB", "YCbCr", "CMYK") else image.mode,
                (image.width // factor, image.height // factor))  # JPEG only; others ignore it
    factor = min(image.size) // short_side
    if factor < 2:
        return image
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        image = image.convert("I" if image.mode.startswith("I;16") else
                              "RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
    return image.reduce(factor)


def _decode(source: Path | io.BytesIO, label: str, *, max_pixels: int | None = None,
            short_side: int | None = None) -> Tensor:
    """Open, check the size from the header, then decode: a bomb or a strip is refused before it takes memory."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                check_dimensions(image.width, image.height, label)
                if max_pixels is not None and image.width * image.height > max_pixels:
                    raise ValueError(f"{label} is {image.width}×{image.height} pixels, more than the "
                                     f"{max_pixels / 1e6:g} megapixels allowed; send a smaller picture")
                shown = image if short_side is None else _shrunk(image, short_side)
                shown.load()
                return pil_to_picture(shown, label)
    except Image.DecompressionBombError as error:
        raise ValueError(f"{label} is refused: {error}".rstrip(".") + " (a decompression bomb?)") from error
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as error:
        empty = " (0 bytes)" if isinstance(source, Path) and source.stat().st_size == 0 else ""
        # Pillow's own message names the source object (a path, or an in-memory buffer's repr): say what it means
        reason = "not an image format Pillow can read" if isinstance(error, UnidentifiedImageError) else error
        raise ValueError(f"cannot read {label}{empty}: {reason} (is it a JPEG/PNG and complete?)") from error


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[str]:
    """File paths and ``sample:`` names, with folders expanded to their images (recursively, sorted)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    expanded: list[str] = []
    for source in sources:
        if not str(source).strip():  # Path("") is the current folder: never what an empty name meant
            raise ValueError("an image name is empty: give an image file, a folder or sample:NAME")
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
