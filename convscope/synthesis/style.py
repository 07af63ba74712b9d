"""Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016, https://arxiv.org/abs/1508.06576).

An image is optimised so that its features at a content layer match the content
photo's and its Gram matrices at the style layers match the style image's:
L = α·L_content + β·Σ_l w_l·E_l (+ a small total-variation term). On networks other
than VGG the activations are softmax-smoothed before both losses (Wang et al., 2021,
https://arxiv.org/abs/2104.05623).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from convscope.models.model import Model, as_model
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.layer_choice import style_layers as default_layers
from convscope.synthesis.loop import optimise
from convscope.synthesis.matching import feature_distance, layer_features
from convscope.synthesis.params import from_image, pixels
from convscope.synthesis.regularisers import total_variation
from convscope.synthesis.texture import _picture, gram_objective, resize_short_side


@dataclass
class StyleResult:
    """The stylised ``image`` ``[3,H,W]`` of ``content`` in the style of ``style``; ``losses`` ``[steps]``."""

    __repr__ = short_repr

    content: Tensor
    style: Tensor
    image: Tensor
    losses: Tensor
    content_layer: str
    style_layers: tuple[str, ...]
    settings: dict = field(default_factory=dict)

    @property
    def loss_reduction(self) -> float:
        """First total loss ÷ last."""
        return float(self.losses[0] / self.losses[-1].clamp_min(1e-12))

    def summary(self) -> str:
        """One line: loss before → after, steps, content and style layers."""
        return (f"loss {float(self.losses[0]):.4g} → {float(self.losses[-1]):.4g} (÷{self.loss_reduction:.1f}) "
                f"in {self.losses.shape[0]} steps; content {self.content_layer}, style {', '.join(self.style_layers)}")

    def picture(self, tile_size: int = 224) -> Picture:
        """Content, style and result side by side, with :meth:`summary` under the title."""
        tiles = [grid(self.content[None], labels=["content"], tile_size=tile_size),
                 grid(self.style[None], labels=["style"], tile_size=tile_size),
                 grid(self.image[None], labels=["stylised"], tile_size=tile_size)]
        return titled(stack(tiles, gap=8), "Neural style transfer", self.summary())

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def style_transfer(model: Model | nn.Module, content: Tensor, style: Tensor, *, size: int | None = 256,
                   style_size: int | None = None, content_layer: str | None = None,
                   style_layers: Sequence[str] | None = None, style_weights: Sequence[float] | None = None,
                   content_weight: float = 1.0, style_weight: float = 10.0, tv_weight: float = 1e-3,
                   colour_weight: float = 1.0, smoothing: str | None = None, steps: int = 300, lr: float = 0.02,
                   optimizer: str = "adam",
                   start: str = "content", generator: torch.Generator | None = None,
                   progress: bool = True) -> StyleResult:
    """``content`` in the style of ``style`` (both ``[3,H,W]`` in [0, 1]).

    ``size`` is the short side the content is scaled to (``None`` keeps it), ``style_size``
    the style's (default: the same). Layers and smoothing default to
    :func:`~convscope.synthesis.layer_choice.style_layers`. ``start`` is ``content``
    (the usual choice, fastest) or ``noise``.
    """
    model = as_model(model)
    content, style = _picture(content), _picture(style)
    if size is not None:
        content = resize_short_side(content, size)
    style = resize_short_side(style, style_size or min(content.shape[-2:]))
    chosen = default_layers(model)
    content_layer = content_layer or chosen.content
    layers = tuple(style_layers) if style_layers is not None else chosen.style
    smoothing = smoothing if smoothing is not None else chosen.smoothing
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    reference = layer_features(model, content, [content_layer])[content_layer]
    objective = (-content_weight * feature_distance(content_layer, reference, smoothing=smoothing)
                 + style_weight * gram_objective(model, style, layers, style_weights, smoothing, colour_weight)
                 - tv_weight * total_variation())
    if start == "content":
        param = from_image(content)
    elif start == "noise":
        param = pixels((content.shape[-2], content.shape[-1]), sd=0.1, generator=generator)
    else:
        raise ValueError(f"start is 'content' or 'noise', got {start!r}")
    result = optimise(model, objective, param, steps=steps, lr=lr, optimizer=optimizer, generator=generator,
                      progress=progress, description="style transfer")
    settings = {"size": tuple(content.shape[-2:]), "steps": steps, "lr": lr, "optimizer": optimizer,
                "content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight,
                "colour_weight": colour_weight,
                "smoothing": smoothing, "start": start}
    return StyleResult(content.cpu(), style.cpu(), result.images[0], result.losses[:, 0], content_layer, layers,
                       settings)
