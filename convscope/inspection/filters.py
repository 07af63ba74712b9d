"""Pictures of a convolution's weights (the seeds' first-layer filter grids, and deeper layers).

- a layer reading colour images (3 input channels): one colour tile per filter;
- a layer reading grey images (1 input channel, e.g. the Fashion-MNIST CNN's first layer): one grey tile per filter;
- a depthwise convolution (one input channel per filter): one greyscale tile per channel;
- a 1×1 (pointwise) convolution: its weights as an out × in matrix heatmap;
- any other convolution: one greyscale tile per (filter, input channel).

Tiles are scaled symmetrically per filter, so 0 is mid-grey and sign is kept. For a layer that reads
the picture, a tile is also the filter's optimal input under a norm constraint: among inputs with
‖x‖ = 1 the response W·x is largest for x = W/‖W‖ (Cauchy–Schwarz; the LeNet slide of the lectures),
and W/‖W‖ differs from the tile only by a positive scale (:meth:`Filters.optimal_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from convscope.models.layers import conv_layers, get_layer, layer_name
from convscope.models.model import Model, as_model
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr


@dataclass
class Filters:
    """The weights ``[out, in/groups, kh, kw]`` of one convolution and how they are best shown."""

    __repr__ = short_repr

    layer: str
    weight: Tensor
    groups: int
    kind: str  # "colour", "grey", "depthwise", "pointwise" or "per-channel"

    def optimal_inputs(self) -> Tensor:
        """``W/‖W‖`` per filter ``[out, in, kh, kw]``: of all inputs patches of norm 1, the one each filter answers
        most strongly (its response there is ``‖W‖``; the bias adds the same to every input)."""
        norms = self.weight.flatten(1).norm(dim=1).clamp_min(1e-12)
        return self.weight / norms.view(-1, 1, 1, 1)

    def picture(self, max_filters: int = 64, max_inputs: int = 16, tile_size: int | None = None) -> Picture:
        """The filters as a labelled grid (at most ``max_filters`` × ``max_inputs`` tiles; a 1×1 layer's matrix
        is drawn whole)."""
        out_channels, in_channels, kh, kw = self.weight.shape
        size = tile_size or max(24, min(64, 8 * max(kh, kw)))
        shown = min(out_channels, max_filters)
        title = f"{self.layer}: {out_channels}×{in_channels}×{kh}×{kw} ({self.kind})"
        if self.kind == "colour":
            tiles = normalize(self.weight[:shown, :3], "symmetric", dims=3)
            body = grid(tiles, columns=min(16, shown), labels=[str(i) for i in range(shown)], tile_size=size)
        elif self.kind in ("depthwise", "grey"):
            tiles = normalize(self.weight[:shown], "symmetric")
            body = grid(tiles, columns=min(16, shown), labels=[str(i) for i in range(shown)], tile_size=size)
        elif self.kind == "pointwise":
            matrix = self.weight[:, :, 0, 0]
            colours = colorize(normalize(matrix, "symmetric"), "coolwarm")
            body = grid(colours[None], tile_size=max(256, min(1024, 10 * max(matrix.shape))))
            title += " — rows: filters, columns: input channels; blue < 0 < red"
        else:
            inputs = min(in_channels, max_inputs)
            tiles = normalize(self.weight[:shown, :inputs], "symmetric", dims=3)
            labels = [f"{o}:{i}" if i == 0 else str(i) for o in range(shown) for i in range(inputs)]
            body = grid(tiles.reshape(-1, 1, kh, kw), columns=inputs, labels=labels, tile_size=size)
            title += " — one row per filter, one tile per input channel"
        return titled(body, title, self.caption(max_filters))

    def caption(self, max_filters: int = 64) -> str:
        """The line under the title: how many filters are drawn, and for a layer reading the picture, what a tile
        also is."""
        out_channels = self.weight.shape[0]
        shown = out_channels if self.kind == "pointwise" else min(out_channels, max_filters)  # a matrix: all rows
        notes = [f"first {shown} of {out_channels} filters"] if shown < out_channels else []
        if self.kind in ("colour", "grey"):
            notes.append("each tile is also the filter's optimal input of norm 1: x = W/‖W‖ maximises W·x over "
                         "‖x‖ = 1 (grey = 0)")
        return "; ".join(notes)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def filters(model: Model | nn.Module, layer: str | nn.Module | None = None) -> Filters:
    """The weights of ``layer`` (default: the first convolution), ready to draw."""
    net = as_model(model).net
    if layer is None:
        convs = conv_layers(net)
        if not convs:
            raise ValueError("this model has no nn.Conv2d layer to show")
        layer = convs[0]
    module = get_layer(net, layer)
    if not isinstance(module, nn.Conv2d):
        first = ", ".join(conv_layers(net)[:8])
        raise ValueError(f"layer {layer_name(net, layer)!r} is a {type(module).__name__}, not a convolution; "
                         f"convolutions include {first} …")
    weight = module.weight.detach().float().cpu()
    kind = _kind(module, weight)
    return Filters(layer_name(net, layer), weight, module.groups, kind)


def _kind(module: nn.Conv2d, weight: Tensor) -> str:
    if weight.shape[1] == 3 and module.groups == 1:
        return "colour"
    if weight.shape[1] == 1 and module.groups > 1:
        return "depthwise"
    if weight.shape[1] == 1 and module.in_channels == 1:
        return "grey"
    if weight.shape[-2:] == (1, 1):
        return "pointwise"
    return "per-channel"
