"""Pictures of a convolution's weights (the seeds' first-layer filter grids, and deeper layers).

- a layer reading colour images (3 input channels): one colour tile per filter;
- a depthwise convolution (one input channel per filter): one greyscale tile per channel;
- a 1×1 (pointwise) convolution: its weights as an out × in matrix heatmap;
- any other convolution: one greyscale tile per (filter, input channel).

Tiles are scaled symmetrically per filter, so 0 is mid-grey and sign is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from convscope.models.layers import conv_layers, get_layer, layer_name
from convscope.models.model import Model, as_model
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture


@dataclass
class Filters:
    """The weights ``[out, in/groups, kh, kw]`` of one convolution and how they are best shown."""

    layer: str
    weight: Tensor
    groups: int
    kind: str  # "colour", "depthwise", "pointwise" or "per-channel"

    def picture(self, max_filters: int = 64, max_inputs: int = 16, tile_size: int | None = None) -> Picture:
        """The filters as a labelled grid (at most ``max_filters`` × ``max_inputs`` tiles)."""
        out_channels, in_channels, kh, kw = self.weight.shape
        size = tile_size or max(24, min(64, 8 * max(kh, kw)))
        shown = min(out_channels, max_filters)
        title = f"{self.layer}: {out_channels}×{in_channels}×{kh}×{kw} ({self.kind})"
        if self.kind == "colour":
            tiles = normalize(self.weight[:shown, :3], "symmetric", dims=3)
            body = grid(tiles, columns=min(16, shown), labels=[str(i) for i in range(shown)], tile_size=size)
        elif self.kind == "depthwise":
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
        hidden = out_channels - shown
        subtitle = f"first {shown} of {out_channels} filters" if hidden else ""
        return titled(body, title, subtitle)

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
        convs = ", ".join(conv_layers(net)[:8])
        raise ValueError(f"layer {layer_name(net, layer)!r} is a {type(module).__name__}, not a convolution; "
                         f"convolutions include {convs} …")
    weight = module.weight.detach().float().cpu()
    kind = _kind(module, weight)
    return Filters(layer_name(net, layer), weight, module.groups, kind)


def _kind(module: nn.Conv2d, weight: Tensor) -> str:
    if weight.shape[1] == 3 and module.groups == 1:
        return "colour"
    if weight.shape[1] == 1 and module.groups > 1:
        return "depthwise"
    if weight.shape[-2:] == (1, 1):
        return "pointwise"
    return "per-channel"
