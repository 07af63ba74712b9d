"""Kernel SHAP over superpixels (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874), as Captum's ``KernelShap``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.lime import Lime
from convscope.models.model import Model

EDGE_WEIGHT = 1e6  # the weight of the copies with every segment and with none, as Captum's


class KernelShap(Lime):
    """Each segment's Shapley value, estimated by a weighted linear regression on randomly masked copies, ``[B,1,H,W]``.

    The first copy keeps every segment, the second none (both weighted 10⁶, which pins the
    values to add up to ``S(x) − S(baseline)``); each other copy keeps ``k`` segments chosen at
    random, ``k`` drawn with probability ∝ ``(M − 1) / (k (M − k))`` for ``M`` segments, and has
    weight 1: sampled this way, the least-squares fit is the Shapley kernel's. The map gives each
    segment its coefficient in the weighted least squares with an intercept (the least-norm one when
    the copies do not determine it, as scikit-learn's ``LinearRegression``), in float64. ``samples``
    counts the two fixed copies. Segments, baseline, ``seed`` and ``batch_size`` as :class:`Lime`.
    Equal to Captum's ``KernelShap`` (called image by image) given the same copies.
    """

    name = "kernel_shap"
    title = "Kernel SHAP"
    paper = "https://arxiv.org/abs/1705.07874"

    def __init__(self, model: Model | nn.Module, *, feature_mask: Tensor | None = None, segments: int = 50,
                 compactness: float = 10.0, baseline: str | float | Tensor = "mean", samples: int = 200,
                 seed: int = 0, batch_size: int | None = None, progress: bool | None = None) -> None:
        super().__init__(model, feature_mask=feature_mask, segments=segments, compactness=compactness,
                         baseline=baseline, samples=samples, seed=seed, batch_size=batch_size, progress=progress)
        if samples < 3:
            raise ValueError(f"samples must be at least 3 (the copies with every segment and with none, and one "
                             f"more), got {samples}")

    def draws(self, count: int) -> Tensor:
        """The kept segments of every copy, ``[samples, count]`` (bool): all, none, then ``k`` at random each."""
        if count < 2:
            raise ValueError(f"Kernel SHAP needs at least 2 segments, got {count}: give more segments= or a "
                             "feature_mask= with more segments")
        generator = torch.Generator().manual_seed(self.seed)
        sizes = torch.arange(1, count, dtype=torch.float64)
        chosen = torch.multinomial((count - 1) / (sizes * (count - sizes)), self.samples - 2, replacement=True,
                                   generator=generator) + 1
        ranks = torch.rand(self.samples - 2, count, generator=generator).argsort(1).argsort(1)
        return torch.cat([torch.ones(1, count, dtype=torch.bool), torch.zeros(1, count, dtype=torch.bool),
                          ranks < chosen[:, None]])

    def weights(self, inputs: Tensor, copies: Tensor, kept: Tensor, counts: Tensor) -> Tensor:
        """10⁶ for a copy with every segment or none (``counts``: each copy's image's segments), 1 for the others."""
        on = kept.sum(1)
        return torch.where((on == 0) | (on == counts), EDGE_WEIGHT, 1.0).double()

    def fit(self, kept: Tensor, scores: Tensor, weights: Tensor) -> Tensor:
        """Each segment's coefficient ``[count]``: weighted least squares with an intercept, least-norm."""
        return weighted_least_squares(kept, scores, weights)


def weighted_least_squares(kept: Tensor, scores: Tensor, weights: Tensor, rcond: float = 1e-6) -> Tensor:
    """``argmin_β Σ wᵢ (yᵢ − c − zᵢ·β)²`` with an intercept ``c``, the least-norm ``β`` (singular values below
    ``rcond`` times the largest dropped, as scikit-learn's ``LinearRegression(tol=1e-6)``), in float64."""
    z, y, w = kept.double(), scores.double(), weights.double()
    p = w / w.sum()
    root = w.sqrt()[:, None]
    z_centred, y_centred = (z - p @ z) * root, (y - p @ y) * root[:, 0]
    return torch.linalg.lstsq(z_centred, y_centred[:, None], rcond=rcond, driver="gelsd").solution[:, 0]
