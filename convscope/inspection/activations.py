"""Every channel's activation map for one picture, with zero fractions and dead channels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.hooks import capture, inspection_mode
from convscope.models.layers import layer_name
from convscope.models.model import Model, as_model
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture


@dataclass
class ActivationMaps:
    """Maps ``[C,H,W]`` of one layer for one picture.

    ``zero_fraction[c]`` is the share of exactly-zero values; ``never_positive[c]`` says that
    no position is positive. A channel is ``dead`` when it is never positive *after a rectifier*
    (``rectified``: the layer gave no negative value for any picture of the pass) — all zero, it
    passes nothing on. Without a rectifier a never-positive channel still carries its negative
    values to the next layer: it is not dead.
    """

    layer: str
    maps: Tensor
    zero_fraction: Tensor
    dead: Tensor
    never_positive: Tensor | None = None
    rectified: bool = True

    def picture(self, max_channels: int = 64, tile_size: int = 72, cmap: str = "gray") -> Picture:
        """A grid of the first ``max_channels`` maps, each scaled to its own range (black = its minimum)."""
        channels = self.maps.shape[0]
        shown = min(channels, max_channels)
        maps = self.maps[:shown]
        scaled = normalize(maps.clamp_min(0) if (maps >= 0).all() else maps, "minmax")
        tiles = colorize(scaled, cmap)
        never = self.dead if self.never_positive is None else self.never_positive
        labels = [f"#{c} dead" if d else f"#{c} never > 0" if n else f"#{c} z={z:.0%}" for c, z, d, n in
                  zip(range(shown), self.zero_fraction[:shown].tolist(), self.dead[:shown].tolist(),
                      never[:shown].tolist(), strict=True)]
        flagged = self.dead[:shown].tolist()
        body = grid(tiles, columns=min(16, shown), labels=labels, tile_size=tile_size, flagged=flagged)
        dead = int(self.dead.sum())
        shape = "×".join(str(s) for s in self.maps.shape)
        if self.rectified:
            subtitle = f"{dead} of {channels} channels dead for this image (red frame)"
        else:
            subtitle = (f"no rectifier at this layer (negative values pass on): {int(never.sum())} of {channels} "
                        "channels never positive for this image, none dead")
        subtitle += "; z = share of zero activations" + (f"; first {shown} channels shown" if shown < channels else "")
        return titled(body, f"{self.layer} activations ({shape})", subtitle)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def activation_maps(model: Model | nn.Module, picture: Tensor, layer: str | nn.Module) -> ActivationMaps:
    """The output of ``layer`` for one picture (``[3,H,W]`` in [0, 1]), channel by channel."""
    return activation_maps_batch(model, picture[None] if picture.dim() == 3 else picture, layer)[0]


def activation_maps_batch(model: Model | nn.Module, pictures: Tensor | list[Tensor],
                          layer: str | nn.Module) -> list[ActivationMaps]:
    """:func:`activation_maps` for many pictures in one forward pass."""
    model = as_model(model)
    name = layer_name(model.net, layer)
    inputs = model.prepare(pictures)
    with inspection_mode(model.net), capture(model.net, [name], detach=True) as store, torch.no_grad():
        model.net(inputs)
    maps = store.activation(name).float()
    if maps.dim() == 2:
        maps = maps[:, :, None, None]
    if maps.dim() != 4:
        raise ValueError(f"layer {name!r} gives {tuple(maps.shape)} outputs; activation maps need [B,C,H,W]")
    zero = (maps == 0).flatten(2).float().mean(2)
    never = (maps <= 0).flatten(2).all(2)
    rectified = bool((maps >= 0).all())
    dead = never & rectified
    return [ActivationMaps(name, maps[b].cpu(), zero[b].cpu(), dead[b].cpu(), never[b].cpu(), rectified)
            for b in range(maps.shape[0])]
