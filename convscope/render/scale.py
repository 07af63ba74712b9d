"""Honest colour scales: a value range printed with the digits that tell its ends apart, and colour bars."""

from __future__ import annotations

import textwrap

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from convscope.render.colormaps import colorize
from convscope.render.layout import BACKGROUND, INK, _fit_text, _text_width, font, text_picture
from convscope.render.picture import Picture

TINY = 0.01  # a range under 1 % of the values' size is stretched over all colours: the label says so


def is_constant(low: float, high: float) -> bool:
    """True when ``low`` and ``high`` are the same number (up to float32 rounding of the larger)."""
    return high - low <= 1e-6 * max(abs(low), abs(high), 1e-30)


def range_text(low: float, high: float) -> str:
    """``'0.99987–1.00000'``: ``low``–``high`` with enough digits to tell them apart, or ``'constant 1'``."""
    if is_constant(low, high):
        return f"constant {high:.3g}"
    digits = 2
    while digits < 10 and f"{low:.{digits}f}" == f"{high:.{digits}f}":
        digits += 1
    scale = max(abs(low), abs(high))
    if scale >= 1e4 or (scale < 1e-2 and digits > 4):
        return f"{low:.3g}–{high:.3g}"
    return f"{low:.{digits}f}–{high:.{digits}f}"


def tiny_range_note(low: float, high: float) -> str | None:
    """Colour maps stretch any range over all colours: for a range under 1 % of the values' size, a warning
    that the colours show tiny differences (``None`` otherwise, and for a constant map, drawn in one colour)."""
    width, scale = high - low, max(abs(low), abs(high))
    if is_constant(low, high) or width >= TINY * scale:
        return None
    return f"spans only {width:.2g} ({range_text(low, high)}), stretched over all colours: the differences are tiny"


def stretch(values: Tensor, low: float, high: float) -> Tensor:
    """``values`` scaled to [0, 1] between ``low`` and ``high``; a constant map is the middle colour (0.5)."""
    if is_constant(low, high):
        return torch.full_like(values, 0.5)
    return ((values - low) / (high - low)).clamp(0, 1)


def colour_bar(cmap: str | None, low: str, high: str, *, width: int = 224, height: int = 12, middle: str = "",
               what: str = "") -> Picture:
    """A horizontal bar of ``cmap`` (``None``: grey, as signed gradient images are shown) with the values at its
    ends (and ``middle``) under it, and ``what`` they are on a line below."""
    ramp = torch.linspace(0, 1, width)[None].expand(height, -1)
    bar = colorize(ramp, cmap) if cmap is not None else ramp[None].expand(3, -1, -1)
    size = 11
    canvas = Image.new("RGB", (width, height + 2 * (size + 4) + 2), BACKGROUND)
    canvas.paste(Picture(bar).to_pil(), (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = height + 2
    draw.text((2, y), low, fill=INK, font=font(size))
    draw.text((width - _text_width(high, size) - 1, y), high, fill=INK, font=font(size))
    if middle:
        draw.text(((width - _text_width(middle, size)) // 2, y), middle, fill=INK, font=font(size))
    if what:
        draw.text((2, y + size + 4), _fit_text(what, width - 2, size), fill=INK, font=font(size))
    return Picture(canvas if what else canvas.crop((0, 0, width, y + size + 4)))


def wrapped(text: str, width: int, *, size: int = 11) -> Picture:
    """``text`` as a picture about ``width`` pixels wide, broken between words."""
    per_line = max(10, int(width / (0.55 * size)))
    return text_picture(textwrap.wrap(text, per_line), size=size)
