"""Rendering: tensors → pictures (normalisation, colour maps, overlays, labelled grids, pages)."""

from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, stack, text_picture, titled
from convscope.render.overlay import overlay, upsample
from convscope.render.picture import Picture, to_uint8

__all__ = ["Picture", "colorize", "grid", "normalize", "overlay", "stack", "text_picture", "titled", "to_uint8",
           "upsample"]
