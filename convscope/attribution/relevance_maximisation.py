"""Relevance maximisation: per channel, the scanned pictures in which it carried most relevance for a target.

Achtibat et al. 2023 (https://doi.org/10.1038/s42256-023-00711-8, "RelMax"): where
activation maximisation shows what excites a channel, relevance maximisation shows what
the channel is *used for* when the network decides on ``target``. One LRP pass per batch
gives every channel's relevance at every position; each channel keeps its ``k`` pictures
with the largest relevance at one position, cut to that position's receptive field as the
scan's top patches are (:mod:`convscope.scan.patches`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from convscope.attribution.base import batch_size_for, chunks
from convscope.attribution.lrp import model_composite, propagate
from convscope.attribution.lrp_composites import Composite
from convscope.models.model import Model
from convscope.scan import storage
from convscope.scan.patches import TopPatches, _patch_side, cut_patch
from convscope.scan.receptive_field import ReceptiveField
from convscope.scan.result import ScanResult
from convscope.targets import TargetLike, as_target


def relevance_patches(model: Model, result: ScanResult, layer: str, channels: Sequence[int], target: TargetLike, *,
                      composite: str | Composite = "epsilon-plus-flat", k: int = 5, limit: int | None = None,
                      batch_size: int | None = None, progress: bool | None = None) -> TopPatches:
    """The ``k`` scanned pictures (of the first ``limit``) where each of ``channels`` of ``layer`` had the largest
    relevance for ``target``; ``values`` are those relevances."""
    layer = result.check_layer(layer)
    if storage.fingerprint(model.net) != result.config["model"]["fingerprint"]:
        scanned = result.config["model"]["name"]
        raise ValueError(f"the scan in {str(result.folder)!r} was made with another model ({scanned}); give the "
                         "same --model and --weights as the scan, or scan with this model")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive number of pictures, got {k!r}")
    pictures = result.pictures
    count = len(pictures) if limit is None else min(limit, len(pictures))
    if count < 1:
        raise ValueError("the scan holds no pictures")
    chosen = model_composite(model, composite)
    goal = as_target(target, model)
    index = torch.as_tensor(list(channels), dtype=torch.long)
    best = torch.full((len(index), 0), float("-inf"))
    images = torch.zeros((len(index), 0), dtype=torch.long)
    positions = torch.zeros((len(index), 0), dtype=torch.long)
    width = 1
    for part in chunks(count, batch_size_for(batch_size, model.device), description="relevance maximisation",
                       progress=progress):
        batch = model.preprocess([pictures.picture(i) for i in range(part.start, part.stop)]).to(model.device)
        relevance = propagate(model, batch, goal, chosen, record=[layer]).layers[layer]
        if relevance.dim() == 2:
            relevance = relevance[..., None, None]
        width = relevance.shape[-1]
        values, where = relevance[:, index.to(relevance.device)].flatten(2).max(2)  # [B,K]
        best = torch.cat([best, values.T.float().cpu()], 1)
        images = torch.cat([images, torch.arange(part.start, part.stop).expand(len(index), -1)], 1)
        positions = torch.cat([positions, where.T.cpu()], 1)
        order = best.argsort(1, descending=True)[:, :k]
        best, images, positions = best.gather(1, order), images.gather(1, order), positions.gather(1, order)
    return _patches(result, layer, index, best, images, torch.stack([positions // width, positions % width], -1))


def _patches(result: ScanResult, layer: str, index: Tensor, values: Tensor, images: Tensor, positions: Tensor
             ) -> TopPatches:
    """The patches under the receptive field of each channel's top positions."""
    try:
        field = result.receptive_field(layer)
    except ValueError:
        shape = result.shape(layer)
        field = ReceptiveField.whole(layer, result.preprocess.input_size,
                                     (shape[1], shape[2]) if len(shape) == 3 else (1, 1), shape[0])
    k = values.shape[1]
    boxes = field.boxes(index.repeat_interleave(k), positions[..., 0].reshape(-1),
                        positions[..., 1].reshape(-1)).reshape(len(index), k, 4)
    side = _patch_side(boxes, field)
    originals = {int(i): result.pictures.picture(int(i)) for i in images.unique().tolist()}
    patches = torch.stack([torch.stack([cut_patch(originals[int(i)], box, result.preprocess, side)
                                        for i, box in zip(row, row_boxes, strict=True)])
                           for row, row_boxes in zip(images, boxes, strict=True)])
    names = [[result.pictures.name(int(i)) for i in row] for row in images]
    return TopPatches(layer, index.tolist(), values, images, positions, boxes, patches, field, names,
                      result.pictures, result.preprocess)
