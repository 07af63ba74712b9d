"""A picture of a few channels of an atlas: each channel's feature visualisation beside the dataset examples that
excite it most, the pairing of Olah et al.'s "Feature Visualization" (https://distill.pub/2017/feature-visualization/).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from convscope.atlas import layout
from convscope.images import load_image
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture


def channels_picture(folder: str | Path, layer: str, channels: Sequence[int], *, top: int = 6,
                     tile_size: int = 96) -> Picture:
    """One row per channel of ``layer`` in the atlas ``folder``: its visualisation, then its ``top`` strongest
    patches from the scan (fewer where the atlas kept fewer), each labelled with the unit's value."""
    folder = Path(folder)
    atlas = layout.read_json(folder / layout.ATLAS)
    if atlas is None:
        raise ValueError(f"{str(folder)!r} holds no atlas (no readable {layout.ATLAS}); make one with "
                         "`convscope atlas`")
    if not channels:
        raise ValueError("name at least one channel")
    records = []
    for channel in channels:
        record = layout.read_json(layout.channel_file(folder, layer, int(channel)))
        if record is None:
            raise ValueError(f"channel {channel} of {layer!r} is not in the atlas {str(folder)!r}; run the same "
                             "`convscope atlas` command with it to make it")
        records.append(record)
    shown = min(top, *(len(record["images"]["top"]) for record in records))
    tiles, labels = [], []
    for record in records:
        paths = [record["images"]["vis"], *record["images"]["top"][:shown]]
        tiles += [_tile(folder / path, tile_size) for path in paths]
        labels += [f"{layer} #{record['channel']}", *(f"{v:.3g}" for v in record.get("top_values", [])[:shown])]
    body = grid(torch.stack(tiles), columns=1 + shown, labels=labels)
    subtitle = (f"left: the feature visualisation; right: the {shown} scanned patches that excite it most"
                if shown else "the feature visualisations (the atlas was made without a scan)")
    return titled(body, f"{atlas['model']}, {layer}", subtitle)


def _tile(path: Path, side: int) -> torch.Tensor:
    image = load_image(path)
    return F.interpolate(image[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0]
