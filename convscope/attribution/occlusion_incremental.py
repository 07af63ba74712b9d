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
    Whole maps go through the rest of the chain ``whole_batch`` copies at a time (on a CPU a
    small batch stays in cache; crops are cheap, so a call may bring more copies than that).
    """

    def __init__(self, chain: Chain, inputs: Tensor, *, crop_share: float = CROP_SHARE, whole_batch: int = 16) -> None:
        self.chain, self.crop_share, self.whole_batch = chain, crop_share, whole_batch
        self.seen, self.output = chain.run(inputs)
        self.local = chain.local_count
        self._totals: dict[int, Tensor] = {}  # clean totals per channel of an element's output, once asked for
        self.whole_from: int | None = None  # after a call: the first element that ran on whole maps

    def output_of(self, k: int) -> Tensor:
        """Element ``k``'s output on the clean images."""
        return self.seen[k + 1] if k + 1 < len(self.seen) else self.output

    def __call__(self, images: Tensor, tops: Tensor, lefts: Tensor, size: int, fill: Tensor,
                 feature: tuple[int, Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
        """Output ``[N,…]`` for ``N`` copies, and with ``feature`` (an element index, ``channels`` ``[N]``) the
        total of that element's output channel ``channels[n]`` for each copy."""
        rows, cols, totals = tops.cpu(), lefts.cpu(), None
        everywhere = torch.zeros_like(rows)
        patch = _nchw(_windows(fill[None], everywhere, rows, cols, size, size)).to(self.seen[0].dtype)
        elements, first_whole = self.chain.elements, self.local
        for k, element in enumerate(elements[:self.local]):
            step = self._step(k, element, images, patch, rows, cols)
            if step is None:
                first_whole = k
                break
            patch, rows, cols = step
            if feature is not None and k == feature[0]:
                totals = self._patched_totals(k, images, patch, rows, cols, feature[1])
        self.whole_from = first_whole
        if first_whole == len(elements):  # every element was local: the last patch pasted into the clean output
            return _pasted(self.output, images, patch, rows, cols), totals
        whole = _pasted(self.seen[first_whole], images, patch, rows, cols)
        outputs, parts_totals = [], []
        for start in range(0, len(whole), self.whole_batch):  # whole maps: a cache-sized batch at a time
            value = whole[start:start + self.whole_batch]
            for k in range(first_whole, len(elements)):
                value = elements[k](value)
                if feature is not None and k == feature[0]:
                    chosen = feature[1][start:start + self.whole_batch, None].to(value.device)
                    parts_totals.append(value.float().flatten(2).sum(2).gather(1, chosen)[:, 0])
            outputs.append(value)
        return torch.cat(outputs), (torch.cat(parts_totals) if parts_totals else totals)

    def _step(self, k: int, element: Element, images: Tensor, patch: Tensor, rows: Tensor,
              cols: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """The element's changed output patch and its corners, or None when a crop is not worth it."""
        if element.pointwise:
            return element.module(patch), rows, cols
        assert element.rows is not None and element.cols is not None, "the chain's first local_count are local"
        down = _plan(element.rows, rows, patch.shape[-2])
        across = _plan(element.cols, cols, patch.shape[-1])
        if down.crop_length * across.crop_length > self.crop_share * element.rows.size_in * element.cols.size_in:
            return None
        source = self.seen[k]
        crops = _windows(source, images, down.crop, across.crop, down.crop_length, across.crop_length)
        crops = _like(_nchw(_paste(crops, rows - down.crop, cols - across.crop, patch)), source)
        computed = element.module(crops)
        firsts = (down.out - down.crop // down.stride, across.out - across.crop // across.stride)
        changed = _windows(computed, torch.arange(len(crops)), *firsts, down.length, across.length)
        return _nchw(changed), down.out, across.out

    def _patched_totals(self, k: int, images: Tensor, patch: Tensor, rows: Tensor, cols: Tensor,
                        channels: Tensor) -> Tensor:
        """Totals of channel ``channels[n]`` of element ``k``'s output: the clean total plus what the patch changed."""
        clean = self.output_of(k)
        if k not in self._totals:
            self._totals[k] = clean.float().flatten(2).sum(2)
        every = torch.arange(len(patch), device=clean.device)
        images, channels = images.to(clean.device), channels.to(clean.device)
        before = _nchw(_windows(clean, images, rows, cols, *patch.shape[-2:]))[every, channels].float()
        after = patch[every, channels].float()
        return self._totals[k][images, channels] + (after.sum((1, 2)) - before.sum((1, 2)))


def _windows(source: Tensor, images: Tensor, tops: Tensor, lefts: Tensor, height: int, width: int) -> Tensor:
    """``source[images[n], :, tops[n]:tops[n] + height, lefts[n]:lefts[n] + width]`` for all ``n``: ``[N,h,w,C]``."""
    device = source.device
    ys = (tops.to(device)[:, None] + torch.arange(height, device=device))[:, :, None]
    xs = (lefts.to(device)[:, None] + torch.arange(width, device=device))[:, None, :]
    return source[images.to(device)[:, None, None], :, ys, xs]


def _paste(windows: Tensor, tops: Tensor, lefts: Tensor, patch: Tensor) -> Tensor:
    """``windows`` ``[N,h,w,C]`` with ``patch[n]`` ``[C,ph,pw]`` written at (``tops[n]``, ``lefts[n]``), clipped."""
    count, height, width, _ = windows.shape
    device, (patch_h, patch_w) = windows.device, patch.shape[-2:]
    ys = torch.arange(height, device=device)[None] - tops.to(device)[:, None]
    xs = torch.arange(width, device=device)[None] - lefts.to(device)[:, None]
    inside = ((ys >= 0) & (ys < patch_h))[:, :, None] & ((xs >= 0) & (xs < patch_w))[:, None, :]
    values = patch[torch.arange(count, device=device)[:, None, None], :, ys.clamp(0, patch_h - 1)[:, :, None],
                   xs.clamp(0, patch_w - 1)[:, None, :]]
    return torch.where(inside[..., None], values, windows)


def _nchw(windows: Tensor) -> Tensor:
    """``[N,h,w,C]`` → ``[N,C,h,w]`` (a view: channels-last memory)."""
    return windows.permute(0, 3, 1, 2)


def _like(tensor: Tensor, layout_of: Tensor) -> Tensor:
    """``tensor`` in the memory layout of ``layout_of`` (channels-last on the CPU, as the cached maps are)."""
    return tensor.contiguous(memory_format=_layout(layout_of))


def _layout(tensor: Tensor) -> torch.memory_format:
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _pasted(source: Tensor, images: Tensor, patch: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Whole maps: ``source[images]`` with each copy's patch pasted at its corner."""
    whole = source.index_select(0, images.to(source.device)).permute(0, 2, 3, 1)
    return _like(_nchw(_paste(whole, rows, cols, patch)), source)
