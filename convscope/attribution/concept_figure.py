"""The concepts figure: each relevant channel's conditional heat map, beside its top patches by relevance and by
activation when a scan is given."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.attribution.concepts import Concepts
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, titled
from convscope.render.overlay import rgb
from convscope.render.picture import Picture
from convscope.scan.patches import TopPatches

TILE = 112


def relevance_colours(maps: Tensor) -> Tensor:
    """Relevance ``[K,C,H,W]`` summed over colours, as red (positive) and blue (negative) pictures ``[K,3,H,W]``."""
    return colorize(normalize(maps.sum(1).float(), "signed"), "bwr")


def concepts_figure(concepts: Concepts, picture: Tensor, label: str, *, by_relevance: TopPatches | None = None,
                    by_activation: TopPatches | None = None) -> Picture:
    """One row per channel: its conditional heat map, then (with a scan) its top patches by relevance and by
    activation. ``picture`` ``[3,H,W]`` is the image as the model saw it, ``label`` what was explained."""
    k = by_relevance.values.shape[1] if by_relevance is not None else 0
    columns = 1 + 2 * k
    whole = relevance_colours(concepts.maps.sum(0, keepdim=True))[0]
    tiles = [_sized(rgb(picture).float().cpu()), _sized(whole.cpu())]
    labels = ["input", "LRP (all channels)"]
    tiles += [torch.ones(3, TILE, TILE)] * (columns - 2)
    labels += [""] * (columns - 2)
    colours = relevance_colours(concepts.maps).cpu()
    for row, channel in enumerate(concepts.channels):
        tiles.append(_sized(colours[row]))
        labels.append(f"#{channel}: {float(concepts.share[row]):.0%}")
        for patches, kind in ((by_relevance, "R"), (by_activation, "a")):
            if patches is None:
                continue
            place = patches.channels.index(channel)
            for j in range(k):
                tiles.append(_sized(patches.patches[place, j]) if j < patches.patches.shape[1] else
                             torch.ones(3, TILE, TILE))
                value = float(patches.values[place, j]) if j < patches.values.shape[1] else float("nan")
                labels.append(f"{kind} {value:.3g}")
    body = grid(torch.stack(tiles), columns=max(columns, 2), labels=labels, tile_size=TILE)
    scan_words = (f"; then its top {k} scanned patches by relevance (R, relevance maximisation) and by activation "
                  "(a)") if by_relevance is not None else ""
    return titled(body, f"Concepts at {concepts.layer} for {label}",
                  f"LRP {concepts.composite}: each row is one channel, its share of the layer's relevance and its "
                  f"conditional heat map (red positive, blue negative){scan_words}")


def _sized(tile: Tensor) -> Tensor:
    tile = tile.float()
    if tile.shape[-2:] == (TILE, TILE):
        return tile
    shrinking = max(tile.shape[-2:]) > TILE
    return F.interpolate(tile[None], size=(TILE, TILE), mode="bilinear" if shrinking else "nearest",
                         antialias=shrinking)[0].clamp(0, 1)
