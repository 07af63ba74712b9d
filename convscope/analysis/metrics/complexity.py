"""Complexity of an explanation: how few pixels carry its weight (lower complexity is easier to read).

- Sparseness: the Gini index of |attributions| (Chalasani et al. 2020, https://arxiv.org/abs/1810.06583); ↑.
- Complexity: the entropy of |attributions| as a distribution over pixels (Bhatt et al. 2020,
  https://arxiv.org/abs/2005.00631); ↓.
- Effective complexity: the number of pixels whose |attribution| exceeds ``eps`` (Nguyen & Martínez 2020,
  https://arxiv.org/abs/2007.07584); ↓.

Each map is first divided by its own largest |value| (``normalise=True``, as Quantus' ``normalise_by_max``, but per
picture: Quantus divides a whole batch by the batch's largest value, so one map's score depends on the others).
"""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.analysis.metrics.common import normalise_by_max, per_pixel


def _prepared(attributions: Tensor, normalise: bool) -> Tensor:
    a = per_pixel(attributions).flatten(1)
    return normalise_by_max(a).abs() if normalise else a.abs()


def sparseness(attributions: Tensor, *, normalise: bool = True) -> Tensor:
    """Gini index ``[B]`` of each map's |values| (1: one pixel holds everything, 0: all equal)."""
    a = (_prepared(attributions, normalise) + 1e-7).sort(1).values
    n = a.shape[1]
    k = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    return ((2 * k - n - 1) * a).sum(1) / (n * a.sum(1))


def complexity(attributions: Tensor, *, normalise: bool = True) -> Tensor:
    """Entropy ``[B]`` (nats) of each map's |values| scaled to sum to one."""
    a = _prepared(attributions, normalise)
    p = a / a.sum(1, keepdim=True)
    return -(p * torch.log(p + 1e-12)).sum(1)


def effective_complexity(attributions: Tensor, *, eps: float = 1e-5, normalise: bool = True) -> Tensor:
    """Number of pixels ``[B]`` whose |attribution| exceeds ``eps`` (after the per-map normalisation)."""
    return (_prepared(attributions, normalise) > eps).sum(1).double()
