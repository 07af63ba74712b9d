"""Labelled grids, titles and side-by-side figures."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from convscope.render.picture import Picture, to_uint8

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
RED = (220, 30, 30)


@functools.cache
def font(size: int, monospace: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans or Sans Mono (shipped with matplotlib, full Unicode), else Pillow's default font."""
    import matplotlib

    name = "DejaVuSansMono.ttf" if monospace else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size=size)


def _text_width(text: str, size: int, monospace: bool = False) -> int:
    left, _, right, _ = font(size, monospace).getbbox(text)
    return int(right - left)


def _fit_text(text: str, width: int, size: int) -> str:
    if _text_width(text, size) <= width:
        return text
    while len(text) > 1 and _text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def grid(tiles: Tensor, *, columns: int | None = None, labels: Sequence[str] | None = None,
         tile_size: int | None = None, padding: int = 4, flagged: Sequence[bool] | None = None,
         font_size: int = 11) -> Picture:
    """Tiles ``[N,C,h,w]`` (values in [0, 1]) in a grid, each with an optional caption below.

    Tiles are enlarged with nearest-neighbour sampling to ``tile_size`` pixels (small
    filters stay crisp); ``flagged`` tiles get a red frame and red caption.
    """
    if tiles.dim() != 4 or tiles.shape[1] not in (1, 3):
        raise ValueError(f"grid needs tiles [N,1|3,h,w], got {tuple(tiles.shape)}")
    count = tiles.shape[0]
    if count == 0:
        raise ValueError("grid needs at least one tile")
    for name, seq in (("labels", labels), ("flagged", flagged)):
        if seq is not None and len(seq) != count:
            raise ValueError(f"{len(seq)} {name} for {count} tiles")
    tiles = tiles.detach().float().expand(-1, 3, -1, -1)
    if tile_size is not None:
        height, width = tiles.shape[-2:]
        scale = tile_size / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        mode = "nearest" if scale >= 1 else "area"
        tiles = F.interpolate(tiles, size=size, mode=mode)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    height, width = tiles.shape[-2:]
    caption = font_size + 4 if labels is not None else 0
    cell_w, cell_h = width + 2 * padding, height + 2 * padding + caption
    canvas = torch.ones(3, rows * cell_h + padding, columns * cell_w + padding)
    frame = torch.tensor(RED, dtype=torch.float32).view(3, 1, 1) / 255
    for i in range(count):
        top = (i // columns) * cell_h + padding
        left = (i % columns) * cell_w + padding
        if flagged is not None and flagged[i]:
            canvas[:, top - 2:top + height + 2, left - 2:left + width + 2] = frame
        canvas[:, top:top + height, left:left + width] = tiles[i].cpu()
    image = Image.fromarray(to_uint8(canvas))
    if labels is not None:
        draw = ImageDraw.Draw(image)
        for i, label in enumerate(labels):
            top = (i // columns) * cell_h + padding + height + 3
            left = (i % columns) * cell_w + padding
            colour = RED if flagged is not None and flagged[i] else INK
            draw.text((left, top), _fit_text(label, width + padding, font_size), fill=colour, font=font(font_size))
    return Picture(image)


def titled(picture: Picture, title: str, subtitle: str = "", *, size: int = 16) -> Picture:
    """``picture`` with a title (and a smaller subtitle) above it."""
    lines = [(title, size)] + ([(subtitle, max(10, size - 4))] if subtitle else [])
    header = sum(s + 6 for _, s in lines) + 4
    width = max(picture.size[0], max(_text_width(t, s) for t, s in lines) + 12)
    canvas = Image.new("RGB", (width, picture.size[1] + header), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = 4
    for text, s in lines:
        draw.text((6, y), text, fill=INK, font=font(s))
        y += s + 6
    canvas.paste(picture.to_pil(), (0, header))
    return Picture(canvas)


def stack(pictures: Sequence[Picture], *, direction: str = "horizontal", gap: int = 8) -> Picture:
    """Pictures side by side (``horizontal``) or one above the other (``vertical``), top/left aligned."""
    if not pictures:
        raise ValueError("stack needs at least one picture")
    if direction not in ("horizontal", "vertical"):
        raise ValueError(f"direction is 'horizontal' or 'vertical', got {direction!r}")
    across = direction == "horizontal"
    widths = [p.size[0] for p in pictures]
    heights = [p.size[1] for p in pictures]
    total = (sum(widths) if across else sum(heights)) + gap * (len(pictures) - 1)
    size = (total, max(heights)) if across else (max(widths), total)
    canvas = Image.new("RGB", size, BACKGROUND)
    offset = 0
    for picture in pictures:
        canvas.paste(picture.to_pil(), (offset, 0) if across else (0, offset))
        offset += (picture.size[0] if across else picture.size[1]) + gap
    return Picture(canvas)


def text_picture(lines: Sequence[str], *, size: int = 13, width: int | None = None,
                 monospace: bool = False) -> Picture:
    """A block of text as a picture (for captions inside figures; ``monospace`` keeps table columns aligned)."""
    measured = max((_text_width(line, size, monospace) for line in lines), default=10) + 12
    canvas = Image.new("RGB", (width or measured, len(lines) * (size + 5) + 8), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, 4 + i * (size + 5)), line, fill=INK, font=font(size, monospace))
    return Picture(canvas)


