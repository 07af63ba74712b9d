"""Exact incremental occlusion (Krypton: Nakandala, Kumar & Papakonstantinou, SIGMOD 2019,
https://doi.org/10.1145/3299869.3319874).

An occluder changes only the activations inside its cone of influence. For a batch of
occluded copies, each local element of the model's :class:`~convscope.attribution.occlusion_chain.Chain`
is run on a crop of its clean input (cached once per image) into which the copy's changed
patch is pasted; the crop carries the halo its receptive field needs and starts on its stride,
so the part of the result that is kept equals what the whole map would give. From the first
element whose crop would cover most of its input, or that mixes all positions, the copies are
pasted into whole maps and the rest of the chain runs on them as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.attribution.occlusion_chain import Chain, Element, Span

CROP_SHARE = 0.9  # a crop larger than this share of its map is no cheaper than the whole map


@dataclass(frozen=True)
class _Plan:
    """Along one axis, per copy: where the changed output starts (``out``, ``length`` long) and the crop."""

    out: Tensor
    length: int
    crop: Tensor
    crop_length: int
    stride: int


def _plan(span: Span, starts: Tensor, length: int) -> _Plan:
    """Outputs that read any of the changed inputs ``[starts, starts + length)``, and the crop that computes them.

    Every copy gets the same output length (the largest, moved inside the map where needed),
    and the same crop length, congruent to the input size modulo the stride so that a crop
    reaching the far edge pads like the whole map. A crop starts on the stride; it reads past
    a near side only at the map's edge, where the block's own padding is the true one.
    """
    stride, size_in, size_out = span.stride, span.size_in, span.size_out
    first = torch.div(starts - span.hi, stride, rounding_mode="floor").add_(1).clamp_(min=0)
    last = (-torch.div(span.lo - starts - length, stride, rounding_mode="floor")).clamp_(max=size_out)
    count = max(1, int((last - first).max()))
    out = torch.minimum(first, torch.full_like(first, size_out - count))
    need_start = out * stride + span.lo
    need_stop = ((out + count - 1) * stride + span.hi).clamp_(max=size_in)
    crop = torch.where(need_start <= 0, 0, torch.div(need_start, stride, rounding_mode="floor") * stride)
    needed = int((need_stop - crop).max())
    crop_length = size_in - stride * ((size_in - needed) // stride)
    crop = torch.minimum(crop, torch.full_like(crop, size_in - crop_length))
    return _Plan(out, count, crop, crop_length, stride)


class IncrementalOcclusion:
    """The model's output (and one element's output totals) for occluded copies of cached clean images.

    ``chain.run`` on the clean ``inputs`` ``[B,C,H,W]`` fills the cache; :meth:`__call__` takes
    the copies' image indices, occluder corners and the fill, and returns what the model gives
    for them, equal (up to float rounding) to running the model on the occluded copies.
    """

    def __init__(self, chain: Chain, inputs: Tensor, crop_share: float = CROP_SHARE) -> None:
        self.chain, self.crop_share = chain, crop_share
        self.seen, self.output = chain.run(inputs)
        self.local = chain.local_count

    def output_of(self, k: int) -> Tensor:
        """Element ``k``'s output on the clean images."""
        return self.seen[k + 1] if k + 1 < len(self.seen) else self.output

    def __call__(self, images: Tensor, tops: Tensor, lefts: Tensor, size: int, fill: Tensor,
                 feature: int | None = None, channels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Output ``[N,…]`` for ``N`` copies, and with ``feature`` (an element index) the total of its output's
        channel ``channels[n]`` ``[N]`` for each copy."""
        tops, lefts, images_cpu = tops.cpu(), lefts.cpu(), images.cpu()
        patch = torch.stack([fill[:, t:t + size, left:left + size] for t, left in zip(tops.tolist(), lefts.tolist(),
                                                                                      strict=True)])
        patch = patch.to(self.seen[0].dtype)
        rows, cols, totals = tops, lefts, None
        whole = None
        for k, element in enumerate(self.chain.elements):
            if whole is None and k < self.local:
                step = self._step(k, element, images_cpu, patch, rows, cols)
                if step is not None:
                    patch, rows, cols = step
                    if k == feature:
                        totals = self._patched_totals(k, images_cpu, patch, rows, cols, channels)
                    continue
            if whole is None:
                whole = _pasted(self.seen[k], images, images_cpu, patch, rows, cols)
            whole = element(whole)
            if k == feature:
                totals = whole.float().flatten(2).sum(2).gather(1, channels[:, None].to(whole.device))[:, 0]
        if whole is None:  # every element was local: the output is the last patch pasted into the clean output
            whole = _pasted(self.output, images, images_cpu, patch, rows, cols)
        return whole, totals

    def _step(self, k: int, element: Element, images: Tensor, patch: Tensor, rows: Tensor,
              cols: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """The element's changed output patch and its corners, or None when a crop is not worth it."""
        if element.pointwise:
            return element.module(patch), rows, cols
        down = _plan(element.rows, rows, patch.shape[-2])
        across = _plan(element.cols, cols, patch.shape[-1])
        if down.crop_length * across.crop_length > self.crop_share * element.rows.size_in * element.cols.size_in:
            return None
        source = self.seen[k]
        crops = torch.empty(len(images), source.shape[1], down.crop_length, across.crop_length, dtype=source.dtype,
                            device=source.device).contiguous(memory_format=_layout(source))
        height, width = patch.shape[-2:]
        for n, (image, top, left, r0, c0) in enumerate(zip(images.tolist(), down.crop.tolist(), across.crop.tolist(),
                                                            rows.tolist(), cols.tolist(), strict=True)):
            crops[n] = source[image, :, top:top + down.crop_length, left:left + across.crop_length]
            y0, x0 = max(r0 - top, 0), max(c0 - left, 0)
            y1, x1 = min(r0 + height - top, down.crop_length), min(c0 + width - left, across.crop_length)
            if y0 < y1 and x0 < x1:
                crops[n, :, y0:y1, x0:x1] = patch[n, :, y0 + top - r0:y1 + top - r0, x0 + left - c0:x1 + left - c0]
        computed = element.module(crops)
        changed = torch.stack([computed[n, :, out_r - top // down.stride:out_r - top // down.stride + down.length,
                                        out_c - left // across.stride:out_c - left // across.stride + across.length]
                               for n, (top, left, out_r, out_c) in enumerate(zip(
                                   down.crop.tolist(), across.crop.tolist(), down.out.tolist(), across.out.tolist(),
                                   strict=True))])
        return changed, down.out, across.out

    def _patched_totals(self, k: int, images: Tensor, patch: Tensor, rows: Tensor, cols: Tensor,
                        channels: Tensor) -> Tensor:
        """Totals of channel ``channels[n]`` of element ``k``'s output: the clean total plus what the patch changed."""
        clean = self.output_of(k)
        height, width = patch.shape[-2:]
        channels = channels.cpu().tolist()
        totals = []
        for n, (image, r0, c0) in enumerate(zip(images.tolist(), rows.tolist(), cols.tolist(), strict=True)):
            before = clean[image, channels[n]]
            change = patch[n, channels[n]].float().sum() - before[r0:r0 + height, c0:c0 + width].float().sum()
            totals.append(before.float().sum() + change)
        return torch.stack(totals)


def _layout(tensor: Tensor) -> torch.memory_format:
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _pasted(source: Tensor, images: Tensor, images_cpu: Tensor, patch: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Whole maps: ``source[images]`` with each copy's patch pasted at its corner."""
    whole = source.index_select(0, images.to(source.device)).contiguous(memory_format=_layout(source))
    height, width = patch.shape[-2:]
    for n, (r0, c0) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        whole[n, :, r0:r0 + height, c0:c0 + width] = patch[n]
    return whole
