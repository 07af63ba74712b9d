"""Occlusion sensitivity (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901, section 4.2)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.attribution.base import (
    Attribution,
    batch_size_for,
    check_inputs,
    chunks,
    copies_target,
    fast_layout,
    forward,
    image_classes,
)
from convscope.attribution.batch_norm_folding import fold_batch_norms
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.attribution.layers import layer_grid
from convscope.attribution.occlusion_chain import Chain, model_chain
from convscope.attribution.occlusion_incremental import IncrementalOcclusion
from convscope.hooks import capture, inspection_mode
from convscope.logs import get_logger
from convscope.models.layers import get_layer, layer_name
from convscope.models.model import Model
from convscope.render.colormaps import colorize
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.render.scale import range_text, stretch
from convscope.reprs import short_repr
from convscope.targets import Target, TargetLike, as_target, class_probabilities

log = get_logger(__name__)
CROPS_PER_PASS = 2  # the incremental path crops this many passes' worth of copies at once (small crops, cheap)
_CHAINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # net → {key: its chain or why none, checked keys}


@dataclass
class OcclusionMaps:
    """The three maps of the paper's figure 7, on the grid of occluder positions ``[B,h',w']``.

    ``score``: the target's probability (class targets) or value with the occluder at
    each position, ``clean_score`` the same without occluder; ``top_class`` /
    ``top_probability``: the most probable class at each position; ``feature``: the
    total activation of ``layer``'s strongest feature map (``channel``, strongest on
    the clean image) at each position, when a layer was asked for. ``path`` says how
    they were computed: ``'incremental'`` or ``'plain'`` (whole occluded copies).
    """

    __repr__ = short_repr

    score: Tensor
    clean_score: Tensor
    top_class: Tensor
    top_probability: Tensor
    classes: Tensor | None
    size: int
    stride: int
    input_size: tuple[int, int]
    probability: bool
    rows: Tensor
    cols: Tensor
    layer: str | None = None
    channel: Tensor | None = None
    feature: Tensor | None = None
    clean_feature: Tensor | None = None
    path: str = "plain"

    @property
    def drop(self) -> Tensor:
        """How much the occluder lowers the target at each position ``[B,h',w']`` (positive: it mattered)."""
        return self.clean_score[:, None, None] - self.score

    def to_pixels(self, values: Tensor) -> Tensor:
        """Position values ``[B,h',w']`` → ``[B,1,H,W]``: each pixel averages the windows that cover it (0 if none)."""
        return windows_to_pixels(values, self.rows, self.cols, self.size, self.input_size)

    def picture(self, tile_size: int = 160) -> Picture:
        """A row per picture: the target's score and the top class's probability at each occluder position (and
        the layer's feature map, when one was asked for), each stretched between its ends (blue low, red high)."""
        maps = [("score", self.score, "jet"), ("top class p", self.top_probability, "jet")]
        if self.feature is not None:
            maps.append((f"{self.layer} map", self.feature, "inferno"))
        panels, labels = [], []
        for b in range(self.score.shape[0]):
            for name, values, cmap in maps:
                pixels = self.to_pixels(values.float())[b, 0].cpu()
                low, high = float(pixels.min()), float(pixels.max())
                panels.append(colorize(stretch(pixels, low, high), cmap).float())
                labels.append(f"{b}: {name} {range_text(low, high)}")
        body = grid(torch.stack(panels), columns=len(maps), labels=labels, tile_size=tile_size)
        subtitle = f"a {self.size}×{self.size} occluder every {self.stride} px ({self.path})"
        return titled(body, "Occlusion maps", subtitle)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


class Occlusion(Attribution):
    """Slides a ``size``×``size`` occluder with ``stride`` over each image and watches the target.

    Called like every method, it returns ``[B,1,H,W]``: for each pixel the mean drop of
    the target (its softmax probability for class targets, as in the paper) over the
    occluder positions covering it. :meth:`maps` gives the paper's three maps.
    ``fill`` is ``'mean'`` (the normalisation mean: grey for ImageNet models), a grey
    level in [0, 1], or a tensor. ``batch_size`` occluded copies go through the model
    per forward pass; a progress bar shows on long runs.

    ``incremental`` (default): where the model is a chain of modules whose first part
    is local (convolutions, pooling, residual blocks), only the region each occluder
    changes is recomputed, from the clean image's cached activations (Krypton,
    https://doi.org/10.1145/3299869.3319874), by a copy of the modules with each batch
    norm folded into its convolution: the same maps, several times faster.
    Other models, targets that read inner layers and ``incremental=False`` take the
    plain path; after a call ``path`` says which ran and ``plain_reason`` why not incremental.
    """

    name = "occlusion"
    title = "Occlusion"
    paper = "https://arxiv.org/abs/1311.2901"

    def __init__(self, model: Model | nn.Module, *, size: int = 32, stride: int = 16,
                 fill: str | float | Tensor = "mean", batch_size: int | None = None,
                 progress: bool | None = None, incremental: bool = True) -> None:
        super().__init__(model)
        if size < 1 or stride < 1:
            raise ValueError(f"occluder size and stride must be at least 1, got size={size}, stride={stride}")
        self.size, self.stride, self.fill = size, stride, fill
        self.batch_size, self.progress, self.incremental = batch_size, progress, incremental
        self.path: str | None = None
        self.plain_reason: str | None = None
        batch_size_for(batch_size, torch.device("cpu"))  # checks it

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        found = self._run(inputs, target, None)
        return found.to_pixels(found.drop)

    def maps(self, inputs: Tensor, target: TargetLike = None, layer: str | nn.Module | None = None) -> OcclusionMaps:
        """The paper's maps: target probability, most probable class and (with ``layer``) strongest feature map."""
        return self._run(check_inputs(inputs, self.model), as_target(target, self.model), layer)

    def positions(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """Top-left corners of the occluder: rows ``[h']`` and columns ``[w']``.

        Every ``stride`` pixels, plus one flush with the far edge when the stride does not
        reach it, so that every pixel is covered by a whole occluder.
        """
        if self.size > min(height, width):
            raise ValueError(f"the occluder ({self.size} px) is larger than the {height}×{width} input; "
                             "give a smaller size")
        return _starts(height, self.size, self.stride), _starts(width, self.size, self.stride)

    def _run(self, inputs: Tensor, target: Target, layer: str | nn.Module | None) -> OcclusionMaps:
        batch, _, height, width = inputs.shape
        name = None if layer is None else layer_name(self.model.net, layer)
        rows, cols = (p.to(inputs.device) for p in self.positions(height, width))
        fill = occluder_fill(self.fill, inputs, self.model)
        layers = list(dict.fromkeys([name, *target.layers] if name else target.layers))
        output, clean_acts = forward(self.model, inputs, layers)
        classes = image_classes(target, output)
        probability = classes is not None
        goal = copies_target(target, classes, torch.arange(batch, device=inputs.device), probability=probability)
        clean = goal(output, clean_acts).float()
        channel: Tensor | None = None
        clean_feature: Tensor | None = None
        if name is not None:
            view = layer_grid(self.model, name, clean_acts[name], inputs)  # feature maps, or tokens on their grid
            totals = _totals(view.maps(clean_acts[name]))
            channel = totals.argmax(1)
            clean_feature = totals.gather(1, channel[:, None])[:, 0]
        places = len(rows) * len(cols)
        found = self._runner(inputs, target, name, output, fill, rows, cols)
        runner, self.plain_reason = (None, found) if isinstance(found, str) else (found, None)
        self.path = "plain" if runner is None else "incremental"
        log.debug("occlusion: %s path%s", self.path, f" ({self.plain_reason})" if runner is None else "")
        score = torch.empty(batch * places, device=inputs.device)
        top_probability = torch.empty_like(score)
        top_class = torch.empty(batch * places, dtype=torch.long, device=inputs.device)
        feature = torch.empty_like(score) if name else None
        with inspection_mode(self.model.net), capture(self.model.net, [] if runner else layers, detach=True) as store:
            per_pass = batch_size_for(self.batch_size, inputs.device) * (1 if runner is None else CROPS_PER_PASS)
            for part in chunks(batch * places, per_pass, description="Occlusion", progress=self.progress):
                pairs = torch.arange(part.start, part.stop, device=inputs.device)
                images, place = pairs // places, pairs % places
                tops, lefts = rows[place // len(cols)], cols[place % len(cols)]
                with torch.no_grad():
                    if runner is not None:
                        out, patched = runner(images, tops, lefts, None if channel is None else channel[images])
                        if feature is not None:
                            assert patched is not None, "a runner given the feature layer totals it"
                            feature[part] = patched
                        score[part] = copies_target(target, classes, images, probability=probability)(out, {}).float()
                        top_probability[part], top_class[part] = class_probabilities(
                        out, getattr(target, "kind", self.model.output), getattr(target, "region", None)).max(1)
                        continue
                    out = self.model.net(fast_layout(occlude(inputs[images], tops, lefts, self.size, fill)))
                    score[part] = copies_target(target, classes, images, probability=probability)(
                        out, store.activations).float()
                    top_probability[part], top_class[part] = class_probabilities(
                        out, getattr(target, "kind", self.model.output), getattr(target, "region", None)).max(1)
                    if name is not None and feature is not None and channel is not None:  # set together
                        totals = _totals(view.maps(store.activation(name)))
                        feature[part] = totals.gather(1, channel[images][:, None])[:, 0]
        grid = (batch, len(rows), len(cols))
        return OcclusionMaps(score.view(grid), clean, top_class.view(grid), top_probability.view(grid), classes,
                             self.size, self.stride, (height, width), probability, rows, cols, name, channel,
                             None if feature is None else feature.view(grid), clean_feature, self.path)


    def _runner(self, inputs: Tensor, target: Target, name: str | None, output: Tensor, fill: Tensor,
                rows: Tensor, cols: Tensor) -> Callable[..., tuple[Tensor, Tensor | None]] | str:
        """The incremental computation for this call, or why the plain path runs instead."""
        if not self.incremental:
            return "incremental=False"
        if target.layers:
            return "the target reads inner layers"
        net = self.model.net
        key = (tuple(inputs.shape[1:]), inputs.dtype, inputs.device, self.size)
        known = _CHAINS.setdefault(net, {})  # found once per model, input shape and occluder size
        with inspection_mode(net), torch.no_grad():
            if key not in known:
                try:
                    known[key] = model_chain(net, fast_layout(inputs[:1]))
                except ValueError as error:
                    known[key] = f"the model is not a chain of modules: {error}"
            chain = known[key]
            if isinstance(chain, str):
                return chain
            if chain.local_count == 0:
                return "its first module mixes all positions or gives no feature map"
            element = None if name is None else chain.element_for(get_layer(net, name))
            for attempt in range(2):
                if attempt:  # a weight changed unseen (through .data)? Fold again, once
                    known.pop(("folded", element), None)
                runner = IncrementalOcclusion(_folded(known, net, chain, inputs, element), fast_layout(inputs),
                                              whole_batch=batch_size_for(self.batch_size, inputs.device))
                if _close(runner.output, output):
                    break
            else:
                return "its chain of modules does not reproduce the model's output"
            if name is not None and (element is None or runner.output_of(element).dim() != 4):
                return f"the feature layer {name!r} is not a feature map between two modules of its chain"
            if ("checked", key) not in known:
                if not self._agrees(runner, inputs, fill, rows, cols):
                    reason = "the incremental result differed from the plain one on a check"
                    known[key] = reason
                    return reason
                known["checked", key] = True
        return lambda images, tops, lefts, channels: runner(images, tops, lefts, self.size, fill,
                                                            None if element is None else (element, channels))

    def _agrees(self, runner: IncrementalOcclusion, inputs: Tensor, fill: Tensor, rows: Tensor, cols: Tensor) -> bool:
        """Whether the incremental output equals the model's at three occluder positions (corner, centre, corner)."""
        tops, lefts = rows[[0, len(rows) // 2, -1]], cols[[0, len(cols) // 2, -1]]
        images = torch.zeros(3, dtype=torch.long, device=inputs.device)
        expected = self.model.net(fast_layout(occlude(inputs[images], tops, lefts, self.size, fill)))
        try:
            found, _ = runner(images, tops, lefts, self.size, fill)
        except RuntimeError:  # e.g. a module that only takes whole maps
            return False
        return _close(found, expected)


def _folded(known: dict, net: nn.Module, chain: Chain, inputs: Tensor, keep: int | None) -> Chain:
    """The chain with its batch norms folded (``keep``'s output as it is): one folded copy of the modules per
    model, shared by every input size and occluder size, made again when a weight or statistic of ``net`` changes."""
    state = tuple((id(t), t._version) for t in (*net.parameters(), *net.buffers()))
    modules = tuple(id(element.module) for element in chain.elements)
    cached = known.get(("folded", keep))
    if cached is None or cached[:2] != (state, modules):
        folded = fold_batch_norms(chain, fast_layout(inputs[:1]), keep)
        known["folded", keep] = cached = (state, modules, [element.module for element in folded.elements])
    return chain.with_modules(cached[2])


def _close(found: Tensor, expected: Tensor) -> bool:
    """Equal up to float rounding: 1e-4 of the output's scale."""
    if found.shape != expected.shape:
        return False
    return bool((found.float() - expected.float()).abs().max() <= 1e-4 * max(1.0, float(expected.abs().max())))


def _starts(length: int, size: int, stride: int) -> Tensor:
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return torch.tensor(starts)


def occluder_fill(spec: str | float | Tensor, inputs: Tensor, model: Model) -> Tensor:
    """The occluder's colour at the model's input ``[C,H,W]``: ``'mean'``, a grey level in [0, 1] or a tensor."""
    if isinstance(spec, Tensor) and spec.dim() == 1:
        spec = spec.view(-1, 1, 1)
    if isinstance(spec, str) and spec != "mean":
        raise ValueError(f"unknown occluder fill {spec!r}: use 'mean', a grey level in [0, 1] or a tensor")
    return baseline_tensor(spec, inputs[:1], model)[0]


def _totals(maps: Tensor) -> Tensor:
    """Total activation of each feature map ``[B,C]``."""
    return maps.float().reshape(maps.shape[0], maps.shape[1], -1).sum(2)


def occlude(images: Tensor, top: Tensor, left: Tensor, size: int, fill: Tensor) -> Tensor:
    """Copies of ``images`` with a ``size`` square at (``top``, ``left``) set to ``fill`` ``[C,H,W]``."""
    height, width = images.shape[-2:]
    mask = (_covers(top, size, height)[:, :, None] & _covers(left, size, width)[:, None, :])[:, None]
    return torch.where(mask, fill.to(images.dtype), images)


def windows_to_pixels(values: Tensor, rows: Tensor, cols: Tensor, size: int, input_size: tuple[int, int]) -> Tensor:
    """Values per occluder position ``[B,h',w']`` → ``[B,1,H,W]``, averaged over the windows covering each pixel.

    ``rows`` and ``cols`` are the occluder's top-left corners; pixels no window covers get 0.
    """
    height, width = input_size
    covers_y = _covers(rows.to(values.device), size, height).to(torch.float32)
    covers_x = _covers(cols.to(values.device), size, width).to(torch.float32)
    sums = torch.einsum("bij,iy,jx->byx", values.float(), covers_y, covers_x)
    counts = torch.einsum("iy,jx->yx", covers_y, covers_x)
    return torch.where(counts > 0, sums / counts.clamp_min(1), 0)[:, None].to(values.dtype)


def _covers(starts: Tensor, size: int, length: int) -> Tensor:
    """``[n, length]``: whether the window starting at ``starts[i]`` covers each pixel."""
    pixels = torch.arange(length, device=starts.device)
    return (pixels[None] >= starts[:, None]) & (pixels[None] < starts[:, None] + size)
