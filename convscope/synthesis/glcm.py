"""Grey-level co-occurrence statistics: the classical texture descriptor, to judge synthesised textures by.

Haralick, Shanmugam & Dinstein, "Textural Features for Image Classification", 1973
(https://doi.org/10.1109/TSMC.1973.4309314), computed with scikit-image's ``graycomatrix`` /
``graycoprops``. A texture is summarised by how often grey level ``i`` sits ``d`` pixels away
from grey level ``j``, averaged over four directions (0°, 45°, 90°, 135°); contrast,
dissimilarity, homogeneity, energy and correlation of those matrices at several distances
describe it independently of any network — unlike the Gram matrices the neural method matches.

:func:`compare_glcm` measures each synthesised picture against its source, next to two yardsticks:
the two halves of the source against each other (how much the statistics vary *within* the
texture) and the source's pixels shuffled (same grey levels, no texture at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.render.colormaps import colorize
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr

PROPERTIES = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation")
DISTANCES = (1, 2, 4, 8)
ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
LUMINANCE = (0.299, 0.587, 0.114)


def grey_levels(picture: Tensor, levels: int = 32) -> np.ndarray:
    """``[3|1,H,W]`` in [0, 1] → ``uint8 [H,W]`` luminance quantised to ``levels`` equal bins."""
    if picture.dim() != 3 or picture.shape[0] not in (1, 3):
        raise ValueError(f"GLCM statistics need a picture [3,H,W] or [1,H,W], got {tuple(picture.shape)}")
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be between 2 and 256, got {levels}")
    picture = picture.detach().float().cpu().clamp(0, 1)
    grey = picture[0] if picture.shape[0] == 1 else (picture * torch.tensor(LUMINANCE).view(3, 1, 1)).sum(0)
    return (grey * levels).floor().clamp(0, levels - 1).to(torch.uint8).numpy()


def glcm_statistics(picture: Tensor, *, distances: Sequence[int] = DISTANCES, levels: int = 32) -> Tensor:
    """``[properties, distances]``: each of :data:`PROPERTIES` at each distance, averaged over four directions."""
    from skimage.feature import graycomatrix, graycoprops

    grey = grey_levels(picture, levels)
    if min(grey.shape) <= max(distances):
        raise ValueError(f"a {grey.shape[0]}×{grey.shape[1]} picture is too small for GLCM distances up to "
                         f"{max(distances)} px: give a larger picture or smaller distances")
    matrices = graycomatrix(grey, distances=list(distances), angles=list(ANGLES), levels=levels, symmetric=True,
                            normed=True)
    return torch.tensor(np.stack([graycoprops(matrices, name).mean(1) for name in PROPERTIES]), dtype=torch.float32)


def glcm_matrix(picture: Tensor, *, distance: int = 1, levels: int = 32) -> Tensor:
    """The co-occurrence matrix itself ``[levels, levels]``: the share of pixel pairs ``distance`` px apart
    (averaged over the four directions, symmetric) whose grey levels are ``(i, j)``; it sums to 1."""
    from skimage.feature import graycomatrix

    grey = grey_levels(picture, levels)
    if min(grey.shape) <= distance:
        raise ValueError(f"a {grey.shape[0]}×{grey.shape[1]} picture is too small for a GLCM distance of "
                         f"{distance} px")
    matrices = graycomatrix(grey, distances=[distance], angles=list(ANGLES), levels=levels, symmetric=True,
                            normed=True)
    return torch.tensor(matrices[:, :, 0, :].mean(-1), dtype=torch.float32)


def glcm_distance(a: Tensor, b: Tensor) -> float:
    """Mean symmetric relative difference ``|a−b| / (|a|+|b|)`` of two statistics tables, in [0, 1] (0: the same)."""
    return float(((a - b).abs() / (a.abs() + b.abs()).clamp_min(1e-8)).mean())


@dataclass
class GlcmComparison:
    """GLCM statistics of a source, the pictures made from it, and the two yardsticks, with their distances."""

    __repr__ = short_repr

    source: Tensor
    statistics: dict[str, Tensor]
    distances: dict[str, float]
    within_source: float
    shuffled: float
    pictures: dict[str, Tensor] = field(default_factory=dict)
    shuffled_picture: Tensor | None = None

    def picture(self, *, distance: int = 1, levels: int = 32, tile_size: int = 160) -> Picture:
        """Each picture above its co-occurrence matrix at ``distance`` px (log scale, one scale for all):
        a texture's matrix is a ridge along the diagonal (neighbours alike) whose width is its contrast."""
        if self.shuffled_picture is None:
            raise ValueError("this comparison keeps no shuffled picture to draw: make it with compare_glcm")
        names = ["source", *self.statistics, "shuffled (no texture)"]
        pictures = [self.source, *self.pictures.values(), self.shuffled_picture]
        matrices = torch.stack([glcm_matrix(p, distance=distance, levels=levels) for p in pictures])
        used = (matrices > 0).any(0).any(0).nonzero().flatten()  # the grey levels any picture has
        first, last = int(used.min()), int(used.max())
        matrices = matrices[:, first:last + 1, first:last + 1]
        floor = float(matrices[matrices > 0].min())
        logged = matrices.clamp_min(floor).log10()
        low, high = float(logged.amin()), float(logged.amax())
        shown = F.interpolate(colorize((logged - low) / max(high - low, 1e-12)), size=tile_size, mode="nearest")
        tiles = torch.cat([torch.stack([_square(p.detach().float().cpu().clamp(0, 1), tile_size) for p in pictures]),
                           shown])
        labels = names + [f"GLCM, d = {distance} px" for _ in names]
        body = grid(tiles, columns=len(names), labels=labels, tile_size=tile_size)
        return titled(body, "Grey-level co-occurrence matrices",
                      f"row i, column j: share of pixel pairs {distance} px apart with grey levels i and j "
                      f"(levels {first}–{last} of {levels}; log scale 10^{low:.1f}–10^{high:.1f}, black = never)")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()

    def lines(self) -> list[str]:
        """The distances as a small table, yardsticks first."""
        rows = [("halves of the source (natural variation)", self.within_source),
                ("source pixels shuffled (no texture)", self.shuffled), *self.distances.items()]
        width = max(len(name) for name, _ in rows)
        return ([f"GLCM distance to the source (0 = same co-occurrence statistics; {', '.join(PROPERTIES)} at "
                 f"{', '.join(map(str, DISTANCES))} px):"]
                + [f"  {name:{width}}  {value:.3f}" for name, value in rows])


def compare_glcm(source: Tensor, pictures: Mapping[str, Tensor] | Sequence[Tensor], *, levels: int = 32,
                 seed: int = 0) -> GlcmComparison:
    """GLCM distance of each picture (a name → picture mapping, or a list) to ``source``, with the yardsticks."""
    if not isinstance(pictures, Mapping):
        pictures = {f"synthesised {i + 1}": p for i, p in enumerate(pictures)}
    reference = glcm_statistics(source, levels=levels)
    statistics = {name: glcm_statistics(p, levels=levels) for name, p in pictures.items()}
    width = source.shape[-1]
    halves = [glcm_statistics(source[..., :width // 2], levels=levels),
              glcm_statistics(source[..., width // 2:], levels=levels)]
    order = torch.randperm(source[0].numel(), generator=torch.Generator().manual_seed(seed))
    shuffled = source.flatten(1)[:, order].view_as(source)
    return GlcmComparison(source, statistics, {name: glcm_distance(s, reference) for name, s in statistics.items()},
                          glcm_distance(*halves), glcm_distance(glcm_statistics(shuffled, levels=levels), reference),
                          dict(pictures), shuffled)


def _square(picture: Tensor, side: int) -> Tensor:
    """A picture ``[1|3,H,W]`` as ``[3,side,side]`` (its centre square), to tile above its matrix."""
    picture = picture.expand(3, -1, -1) if picture.shape[0] == 1 else picture
    height, width = picture.shape[-2:]
    short = min(height, width)
    top, left = (height - short) // 2, (width - short) // 2
    square = picture[None, :, top:top + short, left:left + short]
    return F.interpolate(square, size=side, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
