"""Maximally activating patches: per channel, the pictures that excite it most, cut to the receptive field.

Girshick et al., "Rich feature hierarchies for accurate object detection and semantic
segmentation", 2014 (https://arxiv.org/abs/1311.2524); Zeiler & Fergus, "Visualizing and
Understanding Convolutional Networks", 2014 (https://arxiv.org/abs/1311.2901). The box of the
strongest position is computed exactly (see :mod:`convscope.scan.receptive_field`), mapped back
through the model's resize and crop, and cut from the original picture; where it reaches past
the picture (the network's zero padding) it is filled with the normalisation mean, which is
what a zero input means to the network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.data.pictures import PictureSet
from convscope.models.preprocessing import Preprocess
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.render.scale import wrapped
from convscope.reprs import short_repr
from convscope.scan.receptive_field import ReceptiveField

if TYPE_CHECKING:
    from convscope.scan.result import ScanResult

MAX_PATCH_SIDE = 128
FRAME = torch.tensor([1.0, 0.85, 0.0])


@dataclass
class TopPatches:
    """For each of ``channels``: values, picture indices, positions ``(y, x)`` and boxes of its top ``k``.

    ``boxes`` ``[n,k,4]`` (top, left, bottom, right) are in model-input pixels; ``patches``
    ``[n,k,3,S,S]`` are the crops of the original pictures in [0, 1]; :meth:`context` gives the
    pictures as the model saw them with the box drawn in.
    """

    __repr__ = short_repr

    layer: str
    channels: list[int]
    values: Tensor
    images: Tensor
    positions: Tensor
    boxes: Tensor
    patches: Tensor
    field: ReceptiveField
    names: list[list[str]]
    pictures: PictureSet
    preprocess: Preprocess
    ceiling: float | None = None  # the layer's largest value, when many units reach it (a saturating activation)

    def ties(self) -> list[tuple[int, int, float]]:
        """``(channel, count, value)`` for each channel whose best ``count`` ≥ 2 values are one number.

        Exact ties at the top are what a saturating activation gives (ReLU6 at 6): the order among
        the tied pictures is arbitrary, and more pictures than the scan kept may reach the same value.
        """
        found = []
        for channel, row in zip(self.channels, self.values.float(), strict=True):
            count = int((row == row[0]).sum())
            if count >= 2 and float(row[0]) > 0:
                found.append((channel, count, float(row[0])))
        return found

    @property
    def note(self) -> str | None:
        """What the ties at the top mean, in one sentence (``None`` without ties)."""
        ties = self.ties()
        if not ties:
            return None
        k = self.values.shape[1]
        saturated = [(c, n) for c, n, value in ties if self.ceiling is not None and value == self.ceiling]
        others = [(c, n, value) for c, n, value in ties if self.ceiling is None or value != self.ceiling]
        parts = []
        if saturated:
            parts.append(f"the top activations of {_listed(saturated, k)} are tied at {self.ceiling:g}, the largest "
                         f"value of {self.layer} that many units reach (a saturating activation such as ReLU6): "
                         "the order among the tied pictures is arbitrary and more pictures may reach it than the "
                         "scan kept")
        if others:
            parts.append(f"{_listed([(c, n) for c, n, _ in others], k)} {'has' if len(others) == 1 else 'have'} "
                         "equal top values (equal inputs, such as patches of one flat colour, give equal values): "
                         "the order among them is arbitrary")
        return "; ".join(parts)

    def context(self) -> Tensor:
        """``[n,k,3,H,W]``: each picture resized and cropped as the model saw it, its box outlined."""
        fitted = {int(i): self.preprocess.fit(self.pictures.picture(int(i)))[0] for i in self.images.unique()}
        return torch.stack([torch.stack([_boxed(fitted[int(i)], b) for i, b in zip(row_images, row_boxes,
                                                                                    strict=True)])
                            for row_images, row_boxes in zip(self.images, self.boxes, strict=True)])

    def picture(self, *, context: bool = False, tile_size: int | None = None) -> Picture:
        """One row per channel, best first, each patch labelled with its activation."""
        tiles = self.context() if context else self.patches
        count, k = tiles.shape[:2]
        size = tile_size or (96 if context else max(48, min(96, tiles.shape[-1] * 2)))
        labels = [f"#{c}: {v:.3g}" if j == 0 else f"{v:.3g}"
                  for c, row in zip(self.channels, self.values.tolist(), strict=True) for j, v in enumerate(row)]
        tied = (self.values == self.values[:, :1]) & (self.values[:, :1] > 0)
        tied &= tied.sum(1, keepdim=True) >= 2
        body = grid(tiles.flatten(0, 1), columns=k, labels=labels, tile_size=size, flagged=tied.flatten().tolist())
        height, width = self.field.size(self.channels[0]) if self.channels else (0, 0)
        where = ("whole pictures (each unit sees the whole input)" if self.field.whole_input else
                 f"receptive field {height}×{width} input pixels, stride {self.field.stride[0]}")
        figure = titled(body, f"Top-{k} pictures per channel at {self.layer}",
                        f"{where}; one row per channel, activation under each "
                        + ("(box drawn on the picture the model saw)" if context else "patch"))
        if self.note is None:
            return figure
        return stack([figure, wrapped(f"Red frames: {self.note}.", figure.size[0], size=12)], direction="vertical",
                     gap=0)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def top_patches(result: ScanResult, layer: str | None = None, channels: Sequence[int] | None = None,
                k: int | None = None) -> TopPatches:
    """Cut the top-``k`` patches of ``channels`` (default: the first 16) from the scanned pictures."""
    layer = result.check_layer(layer)
    top = result.top(layer)
    total, kept = top.values.shape
    channels = list(range(min(16, total))) if channels is None else [int(c) for c in channels]
    for channel in channels:
        if not 0 <= channel < total:
            raise ValueError(f"channel {channel} does not exist: {layer!r} has channels 0 … {total - 1}")
    if not channels:
        raise ValueError("name at least one channel")
    k = kept if k is None else k
    if not 1 <= k <= kept:
        raise ValueError(f"the scan kept the top {kept} pictures per channel; ask for k between 1 and {kept}")
    try:
        field = result.receptive_field(layer)
    except ValueError:  # a layer reached through an operation the exact fields do not follow: whole pictures
        shape = result.shape(layer)
        field = ReceptiveField.whole(layer, result.preprocess.input_size,
                                     (shape[1], shape[2]) if len(shape) == 3 else (1, 1), total)
    index = torch.tensor(channels)
    values, images, flat = top.values[index, :k], top.images[index, :k], top.positions[index, :k]
    width = result.shape(layer)[2] if len(result.shape(layer)) == 3 else 1
    positions = torch.stack([flat // width, flat % width], dim=-1)
    boxes = field.boxes(index.repeat_interleave(k), positions[..., 0].reshape(-1),
                        positions[..., 1].reshape(-1)).reshape(len(channels), k, 4)
    preprocess = result.preprocess
    side = _patch_side(boxes, field)
    result.check_pictures(images.unique().tolist())  # patches are cut where the scan found them: same pictures only
    pictures = {int(i): result.pictures.picture(int(i)) for i in images.unique().tolist()}
    patches = torch.stack([torch.stack([cut_patch(pictures[int(i)], b, preprocess, side) for i, b in
                                        zip(row_images, row_boxes, strict=True)])
                           for row_images, row_boxes in zip(images, boxes, strict=True)])
    names = [[result.pictures.name(int(i)) for i in row] for row in images]
    return TopPatches(layer, channels, values, images, positions, boxes, patches, field, names, result.pictures,
                      preprocess, layer_ceiling(top.values))


def _listed(channels: list[tuple[int, int]], k: int) -> str:
    shown = ", ".join(f"#{c} ({n} of {k})" for c, n in channels[:8]) + (" …" if len(channels) > 8 else "")
    return f"{len(channels)} channel{'s' if len(channels) > 1 else ''} ({shown})"


def layer_ceiling(values: Tensor) -> float | None:
    """The largest of a layer's kept top values ``[C,k]`` when it is reached more than once, else ``None``."""
    if values.numel() == 0:
        return None
    largest = values.max()
    return float(largest) if float(largest) > 0 and int((values == largest).sum()) >= 2 else None


def original_box(box: Sequence[int] | Tensor, size: tuple[int, int], preprocess: Preprocess) -> tuple[float, ...]:
    """A box ``(top, left, bottom, right)`` in model-input pixels → the same region in the original picture.

    ``size`` is the original ``(height, width)``; undoes the short-side resize and centre crop
    of :class:`~convscope.models.preprocessing.Preprocess` (coordinates may fall outside the picture).
    """
    height, width = size
    resized = (height, width)
    if preprocess.resize is not None:
        scale = preprocess.resize / min(height, width)
        resized = (max(preprocess.resize, round(height * scale)), max(preprocess.resize, round(width * scale)))
    offset = (0, 0)
    if preprocess.crop is not None:
        crop = preprocess.crop
        offset = ((resized[0] - crop) // 2 if resized[0] >= crop else -((crop - resized[0]) // 2),
                  (resized[1] - crop) // 2 if resized[1] >= crop else -((crop - resized[1]) // 2))
    top, left, bottom, right = (float(v) for v in box)
    scale_y, scale_x = resized[0] / height, resized[1] / width
    return ((top + offset[0]) / scale_y, (left + offset[1]) / scale_x,
            (bottom + offset[0]) / scale_y, (right + offset[1]) / scale_x)


def cut_patch(picture: Tensor, box: Tensor, preprocess: Preprocess, side: int) -> Tensor:
    """The region of ``picture`` under the input box, resized to ``side``×``side``, ``[3,side,side]``."""
    picture = picture.float()
    if picture.shape[0] == 1:
        picture = picture.expand(3, -1, -1)
    height, width = picture.shape[-2:]
    top, left, bottom, right = original_box(box, (height, width), preprocess)
    top, left = math.floor(top), math.floor(left)
    bottom, right = max(math.ceil(bottom), top + 1), max(math.ceil(right), left + 1)
    fill = torch.tensor(preprocess.mean, dtype=picture.dtype).mean() if len(preprocess.mean) != 3 else \
        torch.tensor(preprocess.mean, dtype=picture.dtype)
    canvas = fill.view(-1, 1, 1).expand(3, bottom - top, right - left).clone()
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if y1 > y0 and x1 > x0:
        canvas[:, y0 - top:y1 - top, x0 - left:x1 - left] = picture[:3, y0:y1, x0:x1]
    shrinking = canvas.shape[-1] > side or canvas.shape[-2] > side
    return F.interpolate(canvas[None], size=(side, side), mode="bilinear" if shrinking else "nearest",
                         antialias=shrinking)[0].clamp(0, 1)


def _patch_side(boxes: Tensor, field: ReceptiveField) -> int:
    if field.whole_input:
        return min(MAX_PATCH_SIDE, max(field.input_size))
    extent = int((boxes[..., 2:] - boxes[..., :2]).max())
    return max(8, min(MAX_PATCH_SIDE, extent))


def _boxed(fitted: Tensor, box: Tensor) -> Tensor:
    """The fitted picture ``[C,H,W]`` (as 3 channels) with the box outlined (clipped to the picture)."""
    picture = fitted.expand(3, -1, -1).clone() if fitted.shape[0] == 1 else fitted[:3].clone()
    height, width = picture.shape[-2:]
    top, left, bottom, right = (int(v) for v in box)
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, height) - 1, min(right, width) - 1
    if bottom < top or right < left:
        return picture
    thickness = max(1, round(max(height, width) / 112))
    colour = FRAME.view(3, 1, 1)
    for t in range(thickness):
        picture[:, max(top, min(top + t, bottom)), left:right + 1] = colour[:, 0]
        picture[:, max(top, bottom - t), left:right + 1] = colour[:, 0]
        picture[:, top:bottom + 1, min(right, left + t)] = colour[:, 0]
        picture[:, top:bottom + 1, max(left, right - t)] = colour[:, 0]
    return picture
