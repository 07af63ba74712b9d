"""The deep feature factorisation figure: per picture, every concept in its colour where it wins (as
pytorch-grad-cam's ``show_factorization_on_image``), then each concept's own map, captioned with the
classes its embedding supports."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from convscope.attribution.factorisation import Factors
from convscope.render.colormaps import _lut
from convscope.render.layout import grid, titled
from convscope.render.overlay import rgb
from convscope.render.picture import Picture

IMAGE_WEIGHT = 0.3  # pytorch-grad-cam's run_dff_on_image


def concept_colours(count: int) -> Tensor:
    """``[k,3]``: gist_rainbow at 0, 1/k, 2/k … (the DFF authors' and pytorch-grad-cam's colours)."""
    table = _lut("gist_rainbow")
    return table[[round(i / count * 255) for i in range(count)]]


def concept_labels(factors: Factors, class_names: Sequence[str], top: int = 2) -> list[str]:
    """``'1: tiger cat 45%, Egyptian cat 43%'`` per concept (numbers only when no classifier reads the layer)."""
    found = factors.top_classes(top)
    count = factors.maps.shape[1]
    if found is None:
        return [f"concept {c + 1}" for c in range(count)]
    values, indices = found
    return [f"{c + 1}: " + ", ".join(f"{class_names[int(i)]} {float(v):.0%}" for v, i in zip(values[c], indices[c],
                                                                                          strict=True))
            for c in range(count)]


def factorisation_figure(factors: Factors, pictures: Tensor, names: Sequence[str], class_names: Sequence[str],
                         *, tile: int = 192) -> Picture:
    """One row per picture ``[B,3,H,W]`` (as the model saw them, in [0, 1]): the picture, all concepts (each pixel
    in the colour of its strongest concept, as bright as that concept's map there), then each concept alone."""
    pictures = rgb(pictures).float().cpu()
    heat = factors.heat((pictures.shape[-2], pictures.shape[-1])).cpu()  # [B,k,H,W] in [0, 1]
    count = heat.shape[1]
    colours = concept_colours(count).view(1, count, 3, 1, 1)
    winner = heat.argmax(1, keepdim=True)
    strongest = torch.zeros_like(heat).scatter_(1, winner, heat.gather(1, winner))
    combined = (strongest[:, :, None] * colours).sum(1)
    alone = heat[:, :, None] * colours  # [B,k,3,H,W]
    blend = pictures[:, None] * IMAGE_WEIGHT
    rows, labels = [], []
    words = concept_labels(factors, class_names)
    for b in range(pictures.shape[0]):
        rows += [pictures[b], pictures[b] * IMAGE_WEIGHT + combined[b] * (1 - IMAGE_WEIGHT)]
        rows += list((blend[b] + alone[b] * (1 - IMAGE_WEIGHT)).clamp(0, 1))
        labels += [names[b], "all concepts", *words]
    body = grid(torch.stack(rows).clamp(0, 1), columns=count + 2, labels=labels, tile_size=tile)
    return titled(body, f"Deep feature factorisation of {factors.layer}: {count} concepts",
                  f"{_shared(pictures.shape[0])}; ‖V − WH‖/‖V‖ = {factors.error:.2f} after "
                  f"{factors.steps} NMF steps; captions: the classes each concept's embedding supports")


def _shared(count: int) -> str:
    return "on one picture" if count == 1 else f"shared by the {count} pictures"
