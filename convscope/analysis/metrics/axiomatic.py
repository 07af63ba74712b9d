"""Axioms an attribution may promise.

- Completeness (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365): the attributions sum to the change of
  the class score between the baseline and the picture. :func:`completeness_gap` is ``|Σa − Δf| / |Δf|`` (↓; 0
  for integrated gradients with enough steps); :func:`completeness` says whether it holds as ``numpy.isclose``
  would (Quantus 0.6's test).
"""

from __future__ import annotations

from torch import Tensor

from convscope.analysis.metrics.common import Forward, class_indices, scores
from convscope.analysis.metrics.faithfulness import Baseline, _baseline


def _sum_and_change(model: Forward, x: Tensor, y, attributions: Tensor, baseline: Baseline) -> tuple[Tensor, Tensor]:
    y = class_indices(y, x.shape[0], x.device)
    change = scores(model, x, y, softmax=False) - scores(model, _baseline(baseline, x), y, softmax=False)
    return attributions.detach().flatten(1).double().sum(1).to(change.device), change


def completeness_gap(model: Forward, x: Tensor, y, attributions: Tensor, *, baseline: Baseline = 0.0) -> Tensor:
    """``|Σa − (f(x) − f(baseline))| / |f(x) − f(baseline)|`` ``[B]`` on the class logit."""
    total, change = _sum_and_change(model, x, y, attributions, baseline)
    return (total - change).abs() / change.abs()


def completeness(model: Forward, x: Tensor, y, attributions: Tensor, *, baseline: Baseline = 0.0,
                 rtol: float = 1e-5, atol: float = 1e-8) -> Tensor:
    """1.0 where ``Σa`` is close to ``f(x) − f(baseline)`` (``|Σa − Δf| ≤ atol + rtol·|Δf|``), else 0.0 ``[B]``."""
    total, change = _sum_and_change(model, x, y, attributions, baseline)
    return ((total - change).abs() <= atol + rtol * change.abs()).double()


__all__ = ["completeness", "completeness_gap"]
