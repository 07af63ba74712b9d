"""Finer-CAM (Zhang et al. 2025, "Spotting the difference reveals finer details for visual explanation",
https://arxiv.org/abs/2501.11309)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.attribution.base import forward, image_classes
from convscope.attribution.cam_base import GradientCAM, LayerAttribution
from convscope.models.model import Model
from convscope.models.tokens import Reshape
from convscope.reprs import short_repr
from convscope.targets import Target, class_scores


class FinerCAM(LayerAttribution):
    """Grad-CAM (or another gradient CAM, ``base``) of the target class's score *against* its most similar
    classes: what tells the class apart from the ones the model nearly chose, ``[B,1,h,w]``.

    As pytorch-grad-cam's ``FinerCAM``: the classes are ranked by how close their logit is to the
    target's, ``|y_c − y_t|``; ranks ``comparison`` (default 1, 2, 3: the three closest) are compared, and
    the score explained is ``Σ_j p_j (y_t − α y_j) / (Σ_j p_j + 1e-9)``, ``p`` the softmax (its gradient
    included). ``alpha = 0`` gives the base method's map of ``y_t``; ``alpha = 1`` (the default) the
    difference. Class targets only (an index, a name, one per image or the top class).
    """

    name = "finer_cam"
    title = "Finer-CAM"
    paper = "https://arxiv.org/abs/2501.11309"

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *,
                 reshape: Reshape | None = None, comparison: Sequence[int] = (1, 2, 3), alpha: float = 1.0,
                 base: str = "grad_cam", eigen_smooth: bool = False, aug_smooth: bool = False) -> None:
        super().__init__(model, layer, reshape=reshape, aug_smooth=aug_smooth)
        from convscope.attribution.registry import METHODS

        gradient_cams = {name: cls for name, cls in METHODS.items() if issubclass(cls, GradientCAM)}
        if base not in gradient_cams:
            raise ValueError(f"base must be a gradient CAM ({', '.join(gradient_cams)}), got {base!r}")
        ranks = [comparison] if isinstance(comparison, int) else list(comparison)
        if not ranks or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in ranks):
            raise ValueError(f"comparison must be ranks ≥ 1 of the classes closest to the target (1: the closest), "
                             f"e.g. (1, 2, 3); got {comparison!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not torch.isfinite(torch.tensor(alpha)):
            raise ValueError(f"alpha must be a finite number (1: the difference, 0: the target alone), got {alpha!r}")
        self.comparison, self.alpha, self.base = tuple(ranks), float(alpha), base
        self._base = gradient_cams[base](self.model, layer, reshape=reshape, eigen_smooth=eigen_smooth)
        self._base._layer = self._layer  # one layer choice, found once

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        output, _ = forward(self.model, inputs)
        if not isinstance(output, Tensor) or output.dim() != 2:
            raise ValueError("Finer-CAM compares the classes of a classifier's output [B,classes]; for segmentation "
                             "or detection outputs use Grad-CAM with a region or box target")
        classes = image_classes(target, output)
        if classes is None:
            raise ValueError(f"Finer-CAM compares classes; the target {type(target).__name__} is not a class. "
                             "Give a class index or name (or none for the top class), or use Grad-CAM")
        scores = class_scores(output.detach(), getattr(target, "kind", "auto")).float()
        count = scores.shape[1]
        ranks = [r for r in self.comparison if r < count]
        if not ranks:
            raise ValueError(f"the output has {count} classes: comparison ranks {list(self.comparison)} leave no "
                             f"class to compare with; give ranks below {count}")
        distance = (scores - scores.gather(1, classes[:, None])).abs()
        distance[torch.arange(len(classes), device=distance.device), classes] = -1  # the target itself is rank 0
        order = distance.argsort(dim=1, stable=True)
        compared = FinerTarget(classes, order[:, ranks], self.alpha, getattr(target, "kind", "auto"))
        return self._base._attribute(inputs, compared)


@dataclass(frozen=True)
class FinerTarget(Target):
    """``Σ_j p_j (y_main − α y_j) / (Σ_j p_j + 1e-9)`` per image: pytorch-grad-cam's ``FinerWeightedTarget``."""

    __repr__ = short_repr

    main: Tensor  # [B]
    compared: Tensor  # [B, K]
    alpha: float
    kind: str = "auto"

    def __call__(self, output: Tensor, activations: object) -> Tensor:
        scores = class_scores(output, self.kind)
        rows = torch.arange(scores.shape[0], device=scores.device)
        main = scores[rows, self.main]
        others = scores.gather(1, self.compared)
        weights = scores.softmax(1).gather(1, self.compared)
        return (weights * (main[:, None] - self.alpha * others)).sum(1) / (weights.sum(1) + 1e-9)

    def classes(self, output: Tensor) -> Tensor:
        return self.main
