"""Texture synthesis: Gatys et al.'s Gram-matrix method on any network, and Efros & Leung's sampling.

Neural: start from noise and match the Gram matrices of the source's activations at
several layers (Gatys, Ecker & Bethge, 2015, https://arxiv.org/abs/1505.07376). The layers
and the smoothing come from :func:`~convscope.synthesis.layer_choice.style_layers`: on
networks whose chosen layers are unrectified and peaky the activations are softmax-smoothed
first (Wang et al., 2021, https://arxiv.org/abs/2104.05623); VGG's and EfficientNet-Lite's
rectified layers are used as they are. :meth:`TextureResult.glcm` judges the result by a
descriptor no network took part in: grey-level co-occurrence statistics (:mod:`convscope.synthesis.glcm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.models.model import Model, as_model
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.efros_leung import efros_leung
from convscope.synthesis.glcm import GlcmComparison, compare_glcm
from convscope.synthesis.layer_choice import style_layers
from convscope.synthesis.loop import optimise
from convscope.synthesis.matching import colour_distance, gram_distance, gram_matrix, layer_features, smooth
from convscope.synthesis.objectives import Objective
from convscope.synthesis.params import ImageParam, fourier, from_image, pixels
from convscope.synthesis.sizes import check_picture_memory
from convscope.synthesis.transforms import Roll

METHODS = ("gram", "efros-leung")


@dataclass
class TextureResult:
    """``images`` ``[B,3,H,W]`` synthesised from ``source`` ``[3,h,w]``; ``losses`` ``[steps,B]`` (Gram method)."""

    __repr__ = short_repr

    source: Tensor
    images: Tensor
    method: str
    losses: Tensor | None = None
    layers: tuple[str, ...] = ()
    settings: dict = field(default_factory=dict)

    @property
    def loss_reduction(self) -> float:
        """First loss ÷ last loss (Gram method; ``nan`` for Efros–Leung)."""
        if self.losses is None or self.losses.shape[0] < 2:
            return float("nan")
        return float(self.losses[0].mean() / self.losses[-1].mean().clamp_min(1e-12))

    def summary(self) -> str:
        """One line: the loss (Gram) or window error (Efros–Leung) and the work done."""
        if self.method == "gram":
            assert self.losses is not None, "a Gram texture keeps its losses"
            octaves = self.settings.get("octaves", 1)
            return (f"Gram texture: loss {float(self.losses[0].mean()):.4g} → {float(self.losses[-1].mean()):.4g} "
                    f"(÷{self.loss_reduction:.1f}) over {self.losses.shape[0]} steps in {octaves} octave"
                    + ("s" if octaves > 1 else ""))
        return f"Efros–Leung texture, window {self.settings.get('window')}, " \
               f"mean window error {self.settings.get('mean_error', float('nan')):.4f}"

    def glcm(self) -> GlcmComparison:
        """Each synthesised picture's GLCM distance to the source, with the two yardsticks."""
        return compare_glcm(self.source, list(self.images))

    def picture(self, tile_size: int = 192) -> Picture:
        """The source next to the synthesised textures, with :meth:`summary` under the title."""
        source = grid(self.source[None], labels=["source"], tile_size=tile_size)
        made = grid(self.images, labels=[f"synthesised {i + 1}" for i in range(len(self.images))],
                    tile_size=tile_size, columns=len(self.images))
        return titled(stack([source, made], gap=12), f"Texture synthesis ({self.method})", self.summary())

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def gram_objective(model: Model, reference: Tensor, layers: Sequence[str], weights: Sequence[float] | None = None,
                   smoothing: str = "softmax", colour_weight: float = 0.0) -> Objective:
    """−Σ_l w_l · Gram distance at layer l to the Gram matrices of ``reference`` (``[3,h,w]`` in [0, 1]),
    minus ``colour_weight`` × the distance of the colour Gram matrices."""
    layers = list(layers)
    if not layers:
        raise ValueError("give at least one layer to match Gram matrices at")
    weights = [1.0 / len(layers)] * len(layers) if weights is None else list(weights)
    if len(weights) != len(layers):
        raise ValueError(f"{len(weights)} weights for {len(layers)} layers")
    features = layer_features(model, reference, layers)
    total: Objective | None = None
    for layer, weight in zip(layers, weights, strict=True):
        term = -weight * gram_distance(layer, gram_matrix(smooth(features[layer], smoothing))[0], smoothing=smoothing)
        total = term if total is None else total + term
    assert total is not None, "one layer at least (checked above)"
    if colour_weight:
        total = total - colour_weight * colour_distance(reference.to(model.device))
    return total


def gram_texture(model: Model | nn.Module, source: Tensor, *, size: int | tuple[int, int] | None = None,
                 batch: int = 1, layers: Sequence[str] | None = None, weights: Sequence[float] | None = None,
                 smoothing: str | None = None, colour_weight: float = 1.0, octaves: int = 1, steps: int = 500,
                 lr: float = 0.05, parameterisation: str = "fourier", jitter: int = 4,
                 generator: torch.Generator | None = None, progress: bool = True) -> TextureResult:
    """Gatys et al.'s texture: noise optimised until its Gram matrices match ``source``'s.

    ``layers``/``smoothing`` default to :func:`~convscope.synthesis.layer_choice.style_layers`;
    ``colour_weight`` adds the colour statistics of the source; ``jitter`` shifts the
    picture circularly by up to that many pixels each step, so that strided layers cannot
    hide noise between their samples; ``parameterisation`` is ``fourier`` (default: a
    decorrelated Fourier image, which keeps the high-frequency colour noise of free pixels
    away) or ``pixels`` (Gatys et al.'s; ``lr`` is then best around 0.02); ``octaves`` > 1
    (pixels only) works coarse to fine, half size first against a half-size source.
    ``size`` defaults to the source's.
    """
    model = as_model(model)
    source = _picture(source)
    chosen = style_layers(model)
    layers = tuple(layers) if layers is not None else chosen.style
    smoothing = smoothing if smoothing is not None else chosen.smoothing
    height, width = source.shape[-2:] if size is None else ((size, size) if isinstance(size, int) else size)
    if octaves < 1:
        raise ValueError(f"octaves must be ≥ 1, got {octaves}")
    if parameterisation not in ("pixels", "fourier"):
        raise ValueError(f"parameterisation is 'pixels' or 'fourier', got {parameterisation!r}")
    if parameterisation == "fourier" and octaves > 1:
        raise ValueError("the Fourier parameterisation works in one octave: pass octaves=1")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    transforms = [Roll(jitter)] if jitter > 0 else None
    images, parts = None, []
    for number in range(octaves):
        scale = 0.5 ** (octaves - 1 - number)
        shape = (max(8, round(height * scale)), max(8, round(width * scale)))
        reference = source if scale == 1 else _scaled(source, scale)
        objective = gram_objective(model, reference, layers, weights, smoothing, colour_weight)
        if images is not None:
            param: ImageParam = from_image(F.interpolate(images, size=shape, mode="bilinear", align_corners=False))
        elif parameterisation == "pixels":
            param = pixels(shape, batch, sd=0.1, generator=generator)
        else:
            param = fourier(shape, batch, generator=generator)
        count = steps // octaves if number < octaves - 1 else steps - (octaves - 1) * (steps // octaves)
        result = optimise(model, objective, param, steps=max(1, count), lr=lr, transforms=transforms,
                          generator=generator, progress=progress, description=f"gram texture {number + 1}/{octaves}")
        images = result.images
        parts.append(result.losses)
    settings = {"size": (height, width), "steps": steps, "lr": lr, "smoothing": smoothing, "octaves": octaves,
                "colour_weight": colour_weight, "jitter": jitter, "parameterisation": parameterisation,
                "weights": weights}
    assert images is not None, "octaves ≥ 1 (checked above)"
    return TextureResult(source.cpu(), images, "gram", torch.cat(parts), layers, settings)


def _scaled(picture: Tensor, scale: float) -> Tensor:
    height, width = picture.shape[-2:]
    size = (max(8, round(height * scale)), max(8, round(width * scale)))
    return F.interpolate(picture[None], size=size, mode="area")[0]


def synthesise_texture(model: Model | nn.Module | None, source: Tensor, method: str = "gram",
                       **options) -> TextureResult:
    """Texture from ``source`` by ``method``: ``gram`` (needs a model) or ``efros-leung`` (model unused)."""
    if method == "gram":
        if model is None:
            raise ValueError("the Gram method needs a model")
        return gram_texture(model, source, **options)
    if method in ("efros-leung", "efros_leung"):
        result = efros_leung(_picture(source), **options)
        settings = {"window": result.window, "mean_error": result.mean_error, "seconds": result.seconds}
        return TextureResult(result.source, result.image[None], "efros-leung", settings=settings)
    raise ValueError(f"unknown texture method {method!r}; use one of {METHODS}")


def resize_short_side(picture: Tensor, side: int) -> Tensor:
    """``picture`` ``[3,H,W]`` scaled (area-averaged or bilinear) so that its short side is ``side``."""
    height, width = picture.shape[-2:]
    scale = side / min(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size == (height, width):
        return picture
    check_picture_memory(1, *size, device=picture.device)
    mode = "area" if scale < 1 else "bilinear"
    return F.interpolate(picture[None], size=size, mode=mode)[0].clamp(0, 1)


def _picture(picture: Tensor) -> Tensor:
    if not isinstance(picture, Tensor) or picture.dim() != 3 or picture.shape[0] not in (1, 3):
        shape = tuple(picture.shape) if isinstance(picture, Tensor) else type(picture).__name__
        raise ValueError(f"expected a picture [3,H,W] in [0, 1], got {shape}; load files with convscope.load_image")
    return picture.float().expand(3, -1, -1)
