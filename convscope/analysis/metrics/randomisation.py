"""Randomisation: does the explanation depend on what it should? ↓ similarity for both.

- Model parameter randomisation (Adebayo et al. 2018, https://arxiv.org/abs/1810.03292): the cascading test,
  :func:`convscope.analysis.sanity_checks` (Spearman and SSIM of the map to the original at each stage).
- Random logit (Sixt et al. 2020, https://arxiv.org/abs/1912.09818): the similarity of the map for the class with
  the map for another class drawn at random; an explanation that hardly changes does not explain the class.
  The similarity is convscope's SSIM of the two maps (pictures ``[H,W]``, each scaled to [0, 1]); Quantus 0.6 runs
  scikit-image's SSIM on the maps flattened to one long row, which compares neighbours along rows only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from convscope.analysis.metrics.common import class_indices, generator_for, per_pixel
from convscope.analysis.similarity import ssim
from convscope.render.colormaps import normalize

Explain = Callable[[Tensor, Tensor], Tensor]


def other_classes(y: Tensor, classes: int, seed: int | torch.Generator | None = 0) -> Tensor:
    """For each class in ``y`` ``[B]``, another of ``classes`` drawn uniformly at random ``[B]``."""
    if classes < 2:
        raise ValueError(f"random logit needs at least two classes, got {classes}")
    draw = torch.randint(0, classes - 1, y.shape, generator=generator_for(seed)).to(y.device)
    return draw + (draw >= y).long()  # skip the class itself


def ssim_similarity(a: Tensor, b: Tensor) -> Tensor:
    """SSIM ``[B]`` of two sets of maps, each scaled to [0, 1] by its own minimum and maximum."""
    return ssim(normalize(per_pixel(a).float(), "minmax"), normalize(per_pixel(b).float(), "minmax")).double()


def random_logit(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, *, classes: int,
                 seed: int | torch.Generator | None = 0, other: Tensor | None = None,
                 similarity: Callable[[Tensor, Tensor], Tensor] = ssim_similarity) -> Tensor:
    """Similarity ``[B]`` of each map with the map of a random other class (``other`` ``[B]``: given)."""
    y = class_indices(y, x.shape[0], x.device)
    a = explain(x, y) if attributions is None else attributions
    other = other_classes(y, classes, seed) if other is None else other.to(y.device)
    if bool((other == y).any()):
        raise ValueError("the other classes must differ from the explained ones")
    return similarity(a.detach(), explain(x, other).detach())
