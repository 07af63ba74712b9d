"""Faithfulness of explanation maps: deletion and insertion curves (Petsiuk et al. 2018, RISE,
https://arxiv.org/abs/1806.07421) and the pointing game (Zhang et al. 2016, https://arxiv.org/abs/1608.00507).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.analysis.passes import pictures_per_pass
from convscope.hooks import inspection_mode
from convscope.models.model import Model
from convscope.progress import progress_bar
from convscope.render.overlay import upsample
from convscope.reprs import short_repr
from convscope.synthesis.regularisers import gaussian_blur


@dataclass
class Curves:
    """``deletion``/``insertion``: probability ``[B,S+1]`` at fractions ``[S+1]``; ``*_auc``: ``[B]``."""

    __repr__ = short_repr

    fractions: Tensor
    deletion: Tensor
    insertion: Tensor

    @property
    def deletion_auc(self) -> Tensor:
        return torch.trapezoid(self.deletion, self.fractions, dim=1)

    @property
    def insertion_auc(self) -> Tensor:
        return torch.trapezoid(self.insertion, self.fractions, dim=1)


def deletion_insertion(model: Model, inputs: Tensor, maps: Tensor, classes: Tensor, *, steps: int = 100,
                       batch_size: int | None = None, insertion_sigma: float = 5.0) -> Curves:
    """Class probability as the most important pixels are removed (deletion: replaced by 0 in the
    model's input space, i.e. the mean colour) or revealed on a blurred copy (insertion).

    ``inputs`` ``[B,C,H,W]`` normalised; ``maps`` ``[B,h,w]`` (upsampled bilinearly; higher = more
    important); ``classes`` ``[B]``. ``steps`` equal slices of pixels, so ``S+1`` points per curve;
    ``batch_size`` pictures per pass (default: :func:`~convscope.analysis.passes.pictures_per_pass`).
    """
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3 or maps.shape[0] != inputs.shape[0]:
        raise ValueError(f"need one map [h,w] per input: maps {tuple(maps.shape)}, inputs {tuple(inputs.shape)}")
    height, width = inputs.shape[-2:]
    pixels = height * width
    batch_size = pictures_per_pass(batch_size, inputs.shape, inputs.device)
    saliency = upsample(maps.to(inputs.device).float(), (height, width)).flatten(1)
    order = saliency.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(pixels, device=order.device).expand_as(order))
    counts = torch.linspace(0, pixels, steps + 1, device=inputs.device).round()
    blurred = gaussian_blur(inputs, insertion_sigma)  # the insertion metric's starting canvas
    deletion: list[Tensor] = []
    insertion: list[Tensor] = []
    with inspection_mode(model.net), torch.no_grad():
        for b in range(inputs.shape[0]):
            revealed = (ranks[b][None] < counts[:, None]).view(-1, 1, height, width)  # [S+1,1,H,W]
            for curve, images in ((deletion, torch.where(revealed, torch.zeros_like(inputs[b]), inputs[b])),
                                  (insertion, torch.where(revealed, inputs[b], blurred[b]))):
                chunks = images.split(batch_size)
                curve.append(torch.cat([model.net(c).float().softmax(1)[:, classes[b]] for c in chunks]))
    return Curves(counts.cpu() / pixels, torch.stack(deletion).cpu(), torch.stack(insertion).cpu())


def pointing_game(maps: Tensor, boxes: Sequence[tuple[int, int, int, int]], size: tuple[int, ...],
                  tolerance: int = 15) -> Tensor:
    """Hit (True) when each map's maximum, at input resolution ``size``, lies within ``tolerance`` pixels
    of its box ``(top, left, bottom, right)`` (bottom/right exclusive)."""
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if len(boxes) != maps.shape[0]:
        raise ValueError(f"{len(boxes)} boxes for {maps.shape[0]} maps")
    full = upsample(maps.float(), size).flatten(1)
    peak = full.argmax(1)
    ys, xs = (peak // size[1]).tolist(), (peak % size[1]).tolist()
    hits = [top - tolerance <= y < bottom + tolerance and left - tolerance <= x < right + tolerance
            for y, x, (top, left, bottom, right) in zip(ys, xs, boxes, strict=True)]
    return torch.tensor(hits)


@dataclass
class FaithfulnessStudy:
    """Deletion / insertion curves per method (lower deletion AUC and higher insertion AUC are better)."""

    __repr__ = short_repr

    curves: dict[str, Curves]

    def rows(self) -> list[dict[str, float | str]]:
        return [{"method": m, "deletion_auc": float(c.deletion_auc.mean()),
                 "insertion_auc": float(c.insertion_auc.mean()), "images": int(c.deletion.shape[0])}
                for m, c in self.curves.items()]

    def picture(self):
        from convscope.render.plots import figure_to_picture, new_figure

        figure, axes = new_figure(2, size=(5, 3.6))
        for m, c in self.curves.items():
            x = c.fractions.tolist()
            axes[0][0].plot(x, c.deletion.mean(0).tolist(), label=f"{m} ({c.deletion_auc.mean():.2f})")
            axes[0][1].plot(x, c.insertion.mean(0).tolist(), label=f"{m} ({c.insertion_auc.mean():.2f})")
        for axis, title in zip(axes[0], ("Deletion (lower area is better)", "Insertion (higher area is better)"),
                               strict=True):
            axis.set_title(title)
            axis.set_xlabel("fraction of pixels removed" if "Deletion" in title else "fraction of pixels inserted")
            axis.set_ylabel("probability of the class")
            axis.legend(fontsize=6)
        figure.tight_layout()
        return figure_to_picture(figure)


def faithfulness_study(model: Model, inputs: Tensor, methods: Sequence[str] | None = None, target=None, *,
                       options=None, steps: int = 50, batch_size: int | None = None,
                       progress: bool | None = False) -> FaithfulnessStudy:
    """Deletion and insertion curves of each method's maps on a normalised batch, for ``target``
    (default: each image's top class, fixed from the clean image); ``progress``: a bar over the methods."""
    from convscope.analysis.explainers import build, fixed_target, heatmaps, method_names

    inputs = inputs.to(model.device)
    fixed, classes = fixed_target(model, inputs, target)
    if classes is None:
        raise ValueError("deletion and insertion follow a class's probability: give a class target (or None)")
    curves = {m: deletion_insertion(model, inputs, heatmaps(build(m, model, options), inputs, fixed), classes,
                                    steps=steps, batch_size=batch_size)
              for m in progress_bar(method_names(methods), desc="deletion/insertion", unit="method",
                                    enabled=progress, leave=False)}
    return FaithfulnessStudy(curves)
