"""A channel's dataset examples from a scan: its top-k patches (read where the scan found them) and its bottom-k,
each with the projection of its unit to pixels (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901).

The scan keeps each channel's top pictures with their strongest position, not its weakest. The bottom-k are
read from what it does keep, the pooled feature of every picture: the ``k`` pictures whose feature (the mean
over positions, or the maximum, as the scan pooled) is lowest. Only where in them the channel is weakest is
not stored: those ``k`` pictures per channel (not the data set) go once through the network up to the layer,
and the patch is cut around the weakest unit, which is then projected like the top ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.atlas.channel_facts import channel_scores
from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model
from convscope.render.colormaps import normalize
from convscope.reprs import short_repr
from convscope.scan.patches import _patch_side, cut_patch
from convscope.scan.projections import RULES, crop_box, deconvnet_ignores_pictures, unit_gradients
from convscope.scan.receptive_field import ReceptiveField
from convscope.scan.result import ScanResult
from convscope.synthesis.loop import forward_until_done, stop_after


@dataclass
class Examples:
    """For ``channels``: ``values``/``images`` ``[n,k]`` (top: the strongest unit's value; bottom: the pooled
    feature that ranked the picture), ``patches`` ``[n,k,3,S,S]`` and ``projections``
    ``[n,k,3,S,S]`` (grey = 0, each scaled on its own; ``None`` for a layer without positions)."""

    __repr__ = short_repr

    channels: list[int]
    values: Tensor
    images: Tensor
    patches: Tensor
    projections: Tensor | None


def layer_field(result: ScanResult, layer: str) -> ReceptiveField:
    """The layer's receptive field, or the whole picture where the exact field is unknown (as top patches do)."""
    try:
        return result.receptive_field(layer)
    except ValueError:
        shape = result.shape(layer)
        return ReceptiveField.whole(layer, result.preprocess.input_size,
                                    (shape[1], shape[2]) if len(shape) == 3 else (1, 1), shape[0])


def projection_method(result: ScanResult, model: Model, layer: str) -> str | None:
    """``'deconvnet'`` where it depends on the picture (max-pooling below the layer), else ``'guided_backprop'``;
    ``None`` for a layer without positions."""
    if len(result.shape(layer)) != 3 or layer_field(result, layer).whole_input:
        return None
    top = result.top(layer)
    image = int(top.images[0, 0])
    width = result.shape(layer)[2]
    inputs = model.preprocess.normalize(result.preprocess.fit([result.pictures.picture(image)])).to(model.device)
    flat = top.positions[0, :1]
    independent = deconvnet_ignores_pictures(model, inputs, layer, 0, flat // width, flat % width)
    return "guided_backprop" if independent else "deconvnet"


def top_examples(result: ScanResult, model: Model, layer: str, channels: Sequence[int], k: int,
                 method: str | None) -> Examples:
    """The scan's top-``k`` patches of ``channels`` with their projections."""
    patches = result.top_patches(layer, channels, k)
    projections = None
    if method is not None:
        side = patches.patches.shape[-1]
        rows = []
        for row, channel in enumerate(patches.channels):
            inputs = _inputs(result, model, patches.images[row].tolist())
            ys, xs = patches.positions[row, :, 0], patches.positions[row, :, 1]
            maps = _projected(model, inputs, layer, channel, ys, xs, patches.values[row], method)
            rows.append(torch.stack([crop_box(m, b, side) for m, b in zip(maps, patches.boxes[row], strict=True)]))
        projections = _tiles(torch.stack(rows))
    return Examples(list(patches.channels), patches.values, patches.images, patches.patches, projections)


def bottom_examples(result: ScanResult, model: Model, layer: str, channels: Sequence[int], k: int,
                    method: str | None) -> Examples:
    """The ``k`` pictures with the lowest pooled activation of each of ``channels``, cut around its weakest unit."""
    channels = [int(c) for c in channels]
    scores = channel_scores(result, layer)[:, channels].float().T  # [n,N]
    images = torch.argsort(scores, dim=1, stable=True)[:, :k]
    result.check_pictures(images.unique().tolist())
    wanted = images.unique().tolist()
    maps = _layer_maps(result, model, layer, wanted)  # [U,C,h,w] or [U,C]
    where = {picture: row for row, picture in enumerate(wanted)}
    field = layer_field(result, layer)
    rows = torch.tensor([[where[int(i)] for i in row] for row in images.tolist()])
    index = torch.tensor(channels)[:, None].expand_as(rows)
    spatial = maps.dim() == 4
    chosen = maps[rows, index] if spatial else maps[rows, index][..., None, None]  # [n,k,h,w]
    flat = chosen.flatten(2)
    weakest, position = flat.min(2)
    width = chosen.shape[-1]
    ys, xs = position // width, position % width
    boxes = field.boxes(index.reshape(-1), ys.reshape(-1), xs.reshape(-1)).reshape(len(channels), k, 4)
    side = _patch_side(boxes, field)
    preprocess = result.preprocess
    pictures = {i: result.pictures.picture(i) for i in wanted}
    patches = torch.stack([torch.stack([cut_patch(pictures[int(i)], b, preprocess, side)
                                        for i, b in zip(row, row_boxes, strict=True)])
                           for row, row_boxes in zip(images.tolist(), boxes, strict=True)])
    projections = None
    if method is not None and spatial:
        out = []
        for row, channel in enumerate(channels):
            inputs = _inputs(result, model, images[row].tolist())
            maps_row = _projected(model, inputs, layer, channel, ys[row], xs[row], weakest[row], method)
            out.append(torch.stack([crop_box(m, b, side) for m, b in zip(maps_row, boxes[row], strict=True)]))
        projections = _tiles(torch.stack(out))
    return Examples(channels, scores.gather(1, images), images, patches, projections)


def _inputs(result: ScanResult, model: Model, images: Sequence[int]) -> Tensor:
    fitted = result.preprocess.fit([result.pictures.picture(int(i)) for i in images])
    return result.preprocess.normalize(fitted).to(model.device)


def _projected(model: Model, inputs: Tensor, layer: str, channel: int, ys: Tensor, xs: Tensor, values: Tensor,
               method: str) -> Tensor:
    grads = unit_gradients(model, inputs, layer, channel, ys, xs, rule=RULES[method])
    return (grads * values.to(grads).view(-1, 1, 1, 1)).cpu()  # the unit's value is what is sent down


def _layer_maps(result: ScanResult, model: Model, layer: str, images: Sequence[int], batch: int = 32) -> Tensor:
    parts = []
    with inspection_mode(model.net), capture(model.net, [layer], detach=True) as store, \
            stop_after(model.net, [layer]), torch.no_grad():
        for start in range(0, len(images), batch):
            forward_until_done(model.net, _inputs(result, model, images[start:start + batch]))
            parts.append(store.activation(layer).float().cpu())
    return torch.cat(parts)


def _tiles(projections: Tensor) -> Tensor:
    shown = normalize(projections.float(), "signed", dims=3)
    return shown.expand(-1, -1, 3, -1, -1) if shown.shape[2] == 1 else shown
