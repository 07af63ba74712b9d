"""Every channel's activation map for one picture, with zero fractions and the channels that are all zero.

One picture cannot tell a dead channel (never positive after a rectifier, over a data set: see
``dead-filters`` on a scan) from one this picture does not excite; channels all zero here are called that.
"""

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
from convscope.reprs import short_repr


@dataclass
class ActivationMaps:
    """Maps ``[C,H,W]`` of one layer for one picture.

    ``zero_fraction[c]`` is the share of exactly-zero values; ``never_positive[c]`` says that
    no position is positive. ``dead[c]`` says the channel is never positive *after a rectifier*
    (``rectified``: the layer gave no negative value for any picture of the pass) — all zero for
    this picture, it passes nothing on; whether it is dead for every picture, only a scan tells.
    Without a rectifier a never-positive channel still carries its negative values to the next
    layer. A layer without positions (``1×1``, such as a fully connected one) is drawn as one bar
    per channel.
    """

    __repr__ = short_repr

    layer: str
    maps: Tensor
    zero_fraction: Tensor
    dead: Tensor
    never_positive: Tensor | None = None
    rectified: bool = True

    @property
    def summary(self) -> str:
        """The zero channels in words, or on a layer without a rectifier what is measured instead."""
        if not self.rectified and self.never_positive is not None:
            return (f"{_some(self.never_positive)} never positive (no rectifier at {self.layer}: negative values "
                    "pass on, so none is dead)")
        return (f"{_some(self.dead)} all zero for this picture (whether they are dead for every picture: "
                "dead-filters on a scan)")

    def picture(self, max_channels: int = 64, tile_size: int = 72, cmap: str = "gray") -> Picture:
        """A grid of the first ``max_channels`` maps, each scaled to its own range (black = its minimum).

        A layer without positions (``1×1`` maps) is drawn as a bar chart of every channel's value instead:
        a single value scaled to its own range would be black in every tile.
        """
        if self.maps.shape[-2:] == (1, 1):
            return self._bars()
        channels = self.maps.shape[0]
        shown = min(channels, max_channels)
        maps = self.maps[:shown]
        scaled = normalize(maps.clamp_min(0) if (maps >= 0).all() else maps, "minmax")
        tiles = colorize(scaled, cmap)
        never = self.dead if self.never_positive is None else self.never_positive
        labels = [f"#{c} all 0" if d else f"#{c} never > 0" if n else f"#{c} z={z:.0%}" for c, z, d, n in
                  zip(range(shown), self.zero_fraction[:shown].tolist(), self.dead[:shown].tolist(),
                      never[:shown].tolist(), strict=True)]
        flagged = self.dead[:shown].tolist()
        body = grid(tiles, columns=min(16, shown), labels=labels, tile_size=tile_size, flagged=flagged)
        dead = int(self.dead.sum())
        shape = "×".join(str(s) for s in self.maps.shape)
        if self.rectified:
            subtitle = (f"{dead} of {channels} channels all zero for this picture (red frame; whether they are dead "
                        "for every picture: dead-filters on a scan)")
        else:
            subtitle = (f"no rectifier at this layer (negative values pass on): {int(never.sum())} of {channels} "
                        "channels never positive for this image, none dead")
        subtitle += "; z = share of zero activations" + (f"; first {shown} channels shown" if shown < channels else "")
        return titled(body, f"{self.layer} activations ({shape})", subtitle)

    def _bars(self) -> Picture:
        """One bar per channel: the layer's value for this picture (a 1×1 layer has nothing else to show)."""
        from convscope.render.plots import figure_to_picture, new_figure

        values = self.maps.flatten().float()
        channels = len(values)
        figure, axes = new_figure(size=(min(14.0, 3 + 0.05 * channels), 3.0))
        axis = axes[0, 0]
        axis.bar(range(channels), values.tolist(), width=0.9, color="#4c72b0")
        axis.axhline(0, color="black", linewidth=0.6)
        zero = self.dead.nonzero().flatten().tolist()
        if self.rectified and zero:
            axis.plot(zero, [0.0] * len(zero), linestyle="none", marker="|", markersize=8, color="#d62728")
        axis.set_xlim(-0.5, channels - 0.5)
        axis.set_xlabel("channel")
        axis.set_ylabel("value")
        what = (f"{len(zero)} of {channels} channels zero for this picture (red ticks; whether they are dead for every "
                "picture: dead-filters on a scan)") if self.rectified else (
            f"no rectifier: {int((values <= 0).sum())} of {channels} values are not positive and pass on")
        return titled(figure_to_picture(figure), f"{self.layer}: one value per channel ({channels} channels)", what)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def _some(chosen: Tensor, shown: int = 20) -> str:
    """``'3 channels [1, 4, 9]'``, the list cut after ``shown``."""
    found = chosen.nonzero().flatten().tolist()
    listing = ", ".join(map(str, found[:shown])) + (f", … ({len(found) - shown} more)" if len(found) > shown else "")
    return f"{len(found)} channels" + (f" [{listing}]" if found else "")


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
