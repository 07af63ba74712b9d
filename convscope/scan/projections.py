"""Zeiler & Fergus's figure 2: each channel's top-9 patches beside the projections of their activations.

Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014
(https://arxiv.org/abs/1311.2901), §2.1 and figure 2: for each of the top activations of a
feature map, that single activation (all others of the layer set to zero) is passed down to
pixels through the deconvnet, and shown next to the patch of the picture that produced it.

The deconvnet reads the picture only through max-pooling's switches. A network without
max-pooling (EfficientNet-Lite) therefore gets the *same* projection for every picture — a
fixed pattern per unit, not what this picture contained —; :func:`top_projections` finds
this out by projecting the same unit on a second input and, with ``method='auto'``, uses
guided backprop (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806), which also
masks by the forward pass, instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.attribution.base import forward
from convscope.attribution.picture_independence import other_input, same_maps
from convscope.backward_rules import backward_rules
from convscope.hooks import inspection_mode
from convscope.models.layers import get_layer
from convscope.render.colormaps import normalize
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.render.scale import wrapped
from convscope.reprs import short_repr
from convscope.scan.patches import TopPatches

if TYPE_CHECKING:
    from convscope.models.model import Model
    from convscope.scan.result import ScanResult

PROJECTION_METHODS = ("auto", "deconvnet", "guided_backprop")
RULES = {"deconvnet": "deconvnet", "guided_backprop": "guided"}
TITLES = {"deconvnet": "deconvnet", "guided_backprop": "guided backprop"}


class _Reached(Exception):
    """Raised by the hook once the layer has run: nothing after it is needed."""


def unit_gradients(model: Model, inputs: Tensor, layer: str, channel: int, ys: Tensor, xs: Tensor, *,
                   rule: str) -> Tensor:
    """d activation(b, channel, ys[b], xs[b]) / d inputs[b] under a backward ``rule``, ``[B,C,H,W]``.

    The forward pass stops once ``layer`` has run (the rest of the network plays no part).
    """
    net = model.net
    found: list[object] = []

    def hook(module: object, args: object, output: object) -> None:
        found.append(output[0] if isinstance(output, (tuple, list)) else output)
        raise _Reached

    inputs = inputs.detach().to(model.device).requires_grad_(True)
    with inspection_mode(net):
        handle = get_layer(net, layer).register_forward_hook(hook)
        try:
            with backward_rules(net, rule):
                try:
                    net(inputs)
                except _Reached:
                    pass
        finally:
            handle.remove()
        if not found:
            raise ValueError(f"layer {layer!r} did not run in the forward pass")
        maps = found[0]
        if not isinstance(maps, Tensor) or maps.dim() != 4 or not 0 <= channel < maps.shape[1]:
            raise ValueError(f"channel {channel} of {layer!r} cannot be projected: the layer gives "
                             f"{tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__}")
        rows = torch.arange(maps.shape[0], device=maps.device)
        units = maps[rows, channel, ys.long().to(maps.device), xs.long().to(maps.device)]
        (grad,) = torch.autograd.grad(units.sum(), inputs, allow_unused=True)
    return torch.zeros_like(inputs) if grad is None else grad.detach()


def project_units(model: Model, inputs: Tensor, layer: str, channel: int, ys: Tensor, xs: Tensor, *,
                  method: str = "deconvnet") -> Tensor:
    """One unit per picture passed down to pixels, ``[B,C,H,W]``, all other activations of the layer zeroed.

    ``method`` is ``'deconvnet'`` or ``'guided_backprop'``. The signal sent down is the unit's
    activation (as in the paper), so each map is the rule's gradient times that value.
    """
    if method not in RULES:
        raise ValueError(f"unknown projection {method!r}: use deconvnet or guided_backprop")
    grads = unit_gradients(model, inputs, layer, channel, ys, xs, rule=RULES[method])
    _, found = forward(model, inputs, [layer])
    maps = found[layer]
    values = maps[torch.arange(maps.shape[0]), channel, ys.long().to(maps.device), xs.long().to(maps.device)]
    return grads * values.to(grads).view(-1, 1, 1, 1)


def deconvnet_ignores_pictures(model: Model, inputs: Tensor, layer: str, channel: int, ys: Tensor,
                               xs: Tensor) -> bool:
    """True when the deconvnet gives the same map for another input (no max-pooling switches to read).

    Compares the unit's deconvnet gradient on ``inputs[:1]`` and on a seeded random input of the same shape,
    as :func:`convscope.attribution.picture_independence.ignores_pictures` does for whole maps.
    """
    first = inputs[:1]
    maps = [unit_gradients(model, x, layer, channel, ys[:1], xs[:1], rule="deconvnet")
            for x in (first, other_input(first))]
    return same_maps(maps[0], maps[1])


@dataclass
class TopProjections:
    """Top patches of some channels with, for each, the projection of its activation cut to the same box.

    ``projections`` ``[n,k,C,S,S]`` are the signed maps in the model's input space, cropped to each
    patch's receptive-field box (zero beyond the input) and resized like the patch.
    """

    __repr__ = short_repr

    patches: TopPatches
    projections: Tensor
    method: str
    image_independent: bool

    @property
    def identical(self) -> bool:
        """True when, for every channel, the projections of its pictures are one map (up to scale).

        Only boxes that lie wholly inside the input are compared. Near the input this is what
        both rules give: a first-layer unit's projection is its filter, whatever the picture.
        """
        size = self.patches.preprocess.input_size if self.patches.preprocess.crop else None
        boxes = self.patches.boxes
        inside = (boxes[..., 0] >= 0) & (boxes[..., 1] >= 0) & ~self.blank()  # a blank map shows nothing
        if size is not None:
            inside &= (boxes[..., 2] <= size[0]) & (boxes[..., 3] <= size[1])
        flat = self.projections.flatten(2).float()
        flat = flat / flat.abs().amax(-1, keepdim=True).clamp_min(1e-12)
        compared = 0
        for row in range(flat.shape[0]):
            tiles = flat[row][inside[row]]
            if len(tiles) >= 2:
                compared += 1
                if (tiles - tiles[:1]).abs().max() > 1e-3:
                    return False
        return compared > 0

    @property
    def note(self) -> str:
        """What the projections show, in one sentence (printed by the command, written under the figure)."""
        if self.method == "deconvnet" and self.image_independent:
            return (f"no max-pooling below {self.patches.layer}, so its deconvnet projection is the same for every "
                    "picture (a fixed pattern per unit); guided backprop (--projections guided_backprop) shows what "
                    "each picture contributed")
        if self.identical:
            return (f"the {TITLES[self.method]} projections of each channel are all one map: between "
                    f"{self.patches.layer} and the pixels nothing depends on the picture (a first-layer unit's "
                    "projection is its filter)")
        if self.method == "deconvnet":
            return "deconvnet projections: unpooled through each picture's max-pooling switches"
        reason = (f" (no max-pooling below {self.patches.layer}: the deconvnet would give the same map for every "
                  "picture)") if self.image_independent else ""
        return f"guided-backprop projections{reason}"

    def blank(self) -> Tensor:
        """``[n,k]`` bool: projections that are exactly zero (nothing reached the pixels)."""
        return self.projections.flatten(2).abs().amax(-1) == 0

    @property
    def notes(self) -> list[str]:
        """:attr:`note`, what ties at the top mean, and why blank projections are blank."""
        notes = [self.note]
        if self.patches.note:
            notes.append(self.patches.note)
        blank = self.blank()
        if bool(blank.any()):
            ceiling = self.patches.ceiling
            saturated = int((blank & (self.patches.values == ceiling)).sum()) if ceiling is not None else 0
            why = (f"{saturated} of them are units at the layer's ceiling {ceiling:g}, where guided backprop passes "
                   "no gradient (a saturated activation's derivative is 0: ReLU6's at 6), so nothing reaches the "
                   "pixels; the deconvnet's rule (--projections deconvnet) does not look at the forward pass"
                   ) if saturated else (
                "no gradient reached the pixels from these units")
            notes.append(f"{int(blank.sum())} of {blank.numel()} projections are blank (uniform grey): {why}")
        return notes

    def tiles(self) -> Tensor:
        """``[n,k,3,S,S]`` in [0, 1]: each projection scaled on its own (grey = 0, clipped at 99.5 % of |v|)."""
        shown = normalize(self.projections.float(), "signed", dims=3)
        return shown.expand(-1, -1, 3, -1, -1) if shown.shape[2] == 1 else shown

    def picture(self, *, tile_size: int | None = None, per_row: int = 2) -> Picture:
        """Per channel a 3-column block of projections beside the block of patches, as in the paper's figure 2."""
        patches = self.patches
        k, side = patches.patches.shape[1], patches.patches.shape[-1]
        size = tile_size or max(40, min(80, side * 2))
        shown = self.tiles()
        blocks = []
        for row, channel in enumerate(patches.channels):
            values = patches.values[row].tolist()
            columns = min(3, k)
            left = grid(shown[row], columns=columns, tile_size=size, labels=[f"{v:.3g}" for v in values])
            right = grid(patches.patches[row].float(), columns=columns, tile_size=size,
                         labels=list(patches.names[row]) if _short(patches.names[row]) else [""] * k)
            blocks.append(titled(stack([left, right], gap=2), f"channel {channel}", size=12))
        rows = [stack(blocks[i:i + per_row], gap=16) for i in range(0, len(blocks), per_row)]
        body = stack(rows, direction="vertical", gap=8)
        height, width = patches.field.size(patches.channels[0])
        where = ("whole pictures" if patches.field.whole_input else
                 f"receptive field {height}×{width} input pixels")
        figure = titled(body, f"Top-{k} activations of {patches.layer}: {TITLES[self.method]} projection | patch",
                        f"left: each activation alone projected to pixels (grey = 0), its value under it; right: the "
                        f"patch it came from; {where}")
        lines = [wrapped(note[0].upper() + note[1:] + ".", figure.size[0], size=12) for note in self.notes]
        return stack([figure, *lines], direction="vertical", gap=0)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def top_projections(result: ScanResult, layer: str | None = None, channels: Sequence[int] | None = None,
                    k: int | None = None, *, method: str = "auto", model: Model | None = None) -> TopProjections:
    """Zeiler & Fergus's figure 2 for ``channels`` of a scanned ``layer`` (``k``: pictures per channel, default
    all the scan kept — the paper shows 9).

    ``method``: ``'deconvnet'``, ``'guided_backprop'``, or ``'auto'`` — the deconvnet where it
    depends on the picture (networks with max-pooling), guided backprop where it does not.
    ``model`` defaults to the scanned model reloaded (checked against the scan's fingerprint).
    """
    if method not in PROJECTION_METHODS:
        raise ValueError(f"unknown projection {method!r}: use " + ", ".join(PROJECTION_METHODS))
    patches = result.top_patches(layer, channels, k)
    model = model if model is not None else result.model()
    if patches.field.whole_input or len(result.shape(patches.layer)) != 3:
        raise ValueError(f"{patches.layer!r} has no spatial map; projections need a convolutional layer")
    preprocess = result.preprocess
    side = patches.patches.shape[-1]
    projections = []
    independent: bool | None = None
    chosen = method
    for row, channel in enumerate(patches.channels):
        images = patches.images[row]
        fitted = preprocess.fit([result.pictures.picture(int(i)) for i in images.tolist()])
        inputs = preprocess.normalize(fitted).to(model.device)
        ys, xs = patches.positions[row, :, 0], patches.positions[row, :, 1]
        if independent is None:
            independent = deconvnet_ignores_pictures(model, inputs, patches.layer, channel, ys, xs)
            if method == "auto":
                chosen = "guided_backprop" if independent else "deconvnet"
        grads = unit_gradients(model, inputs, patches.layer, channel, ys, xs, rule=RULES[chosen])
        maps = (grads * patches.values[row].to(grads).view(-1, 1, 1, 1)).cpu()  # the paper sends the value down
        projections.append(torch.stack([crop_box(m, b, side) for m, b in zip(maps, patches.boxes[row],
                                                                                 strict=True)]))
    return TopProjections(patches, torch.stack(projections), chosen, bool(independent))


def crop_box(values: Tensor, box: Tensor, side: int) -> Tensor:
    """``values`` ``[C,H,W]`` cut to the box ``(top, left, bottom, right)`` (zero outside), resized to ``side``."""
    top, left, bottom, right = (int(v) for v in box)
    height, width = values.shape[-2:]
    canvas = values.new_zeros(values.shape[0], max(1, bottom - top), max(1, right - left))
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if y1 > y0 and x1 > x0:
        canvas[:, y0 - top:y1 - top, x0 - left:x1 - left] = values[:, y0:y1, x0:x1]
    shrinking = canvas.shape[-1] > side or canvas.shape[-2] > side
    return F.interpolate(canvas[None].float(), size=(side, side), mode="area" if shrinking else "nearest")[0]


def _short(names: Sequence[str]) -> bool:
    return all(len(n) <= 14 for n in names)
