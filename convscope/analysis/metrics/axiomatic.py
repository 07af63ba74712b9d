"""Axioms an attribution may promise.

- Completeness (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365): the attributions sum to the change of
  the class score between the baseline and the picture. :func:`completeness_gap` is ``|Σa − Δf| / |Δf|`` (↓; 0
  for integrated gradients with enough steps); :func:`completeness` says whether it holds within a tolerance.
- Non-sensitivity (Nguyen & Martínez 2020, https://arxiv.org/abs/2007.07584): a pixel whose removal leaves the
  score unchanged should get zero attribution and only such pixels; :func:`non_sensitivity` counts the pixels (or
  groups of ``features_in_step`` in raster order) that break this, ↓.
- Input invariance (Kindermans et al. 2017, https://arxiv.org/abs/1711.00867): a model that sees ``x + c`` but
  subtracts ``c`` before its first layer computes the same function; an input-invariant method gives the same map
  for both. :func:`input_invariance` says whether it does, ↑.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from convscope.analysis.metrics.common import Forward, class_indices, per_pixel, scores
from convscope.analysis.metrics.faithfulness import Baseline, _baseline, _check_step, perturbed_scores


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


def non_sensitivity(model: Forward, x: Tensor, y, attributions: Tensor, *, features_in_step: int = 1,
                    eps: float = 1e-5, baseline: Baseline = 0.0, softmax: bool = True, abs: bool = True,
                    batch_size: int | None = None) -> Tensor:
    """Groups ``[B]`` whose attribution is (all below ``eps``) exactly when replacing them alone changes the
    score by less than ``eps`` fails: the count of (zero attribution) XOR (no effect) — 0 is perfect. With one pixel
    per group this is Quantus 0.6's count (its larger groups compare arrays of different lengths)."""
    a = per_pixel(attributions, x).flatten(1).to(x.device)
    a = a.abs() if abs else a
    y = class_indices(y, x.shape[0], x.device)
    height, width = x.shape[-2:]
    steps = _check_step(features_in_step, a.shape[1])
    group = torch.arange(a.shape[1], device=x.device) // features_in_step

    def masks(b: int, part: slice) -> Tensor:
        return (group[None] == torch.arange(steps, device=x.device)[part, None]).view(-1, 1, height, width)

    original = scores(model, x, y, softmax=softmax, batch_size=batch_size)
    after = perturbed_scores(model, x, y, masks, steps, baseline, softmax=softmax, batch_size=batch_size)
    no_effect = (after - original[:, None]).abs() < eps
    zero = torch.zeros(x.shape[0], steps, dtype=torch.bool, device=x.device).index_reduce_(
        1, group, a >= eps, "amax", include_self=True).logical_not()
    return (no_effect ^ zero).sum(1).double()


@contextmanager
def shifted_input(net: nn.Module, shift: float) -> Iterator[nn.Module]:
    """While inside, ``net`` subtracts ``shift`` from its input first (a forward pre-hook, removed on leaving even
    on error): ``net(x + shift)`` then equals ``net(x)`` outside."""
    def subtract(module: nn.Module, args: tuple) -> tuple:
        return (args[0] - shift, *args[1:])

    handle = net.register_forward_pre_hook(subtract)
    try:
        yield net
    finally:
        handle.remove()


def input_invariance(net: nn.Module, x: Tensor, y, explain: Callable[[Tensor, Tensor], Tensor], *,
                     shift: float = -1.0, atol: float = 1e-4, rtol: float = 0.0,
                     norm_rtol: float | None = None) -> Tensor:
    """1.0 where the map ``explain(x, y)`` of ``x`` by ``net`` equals (every value to ``atol`` + ``rtol`` × the map's
    largest |value|; or, with ``norm_rtol``, the difference's norm to ``norm_rtol`` × the map's norm, which lets
    float rounding of ``x + shift − shift`` flip a few units of a deep network) the map of ``x + shift`` by the same
    network made to subtract ``shift`` first, else 0.0 ``[B]``.
    ``explain`` explains with ``net``. (Quantus 0.6 moves the shift into the first layer's bias instead, which is
    not the same function where a padded convolution sees the border.)"""
    y = class_indices(y, x.shape[0], x.device)
    before = explain(x, y).detach().flatten(1)
    with shifted_input(net, shift):
        after = explain(x + shift, y).detach().flatten(1)
    if norm_rtol is not None:
        return ((before - after).norm(dim=1) <= norm_rtol * before.norm(dim=1)).double()
    tolerance = atol + rtol * before.abs().amax(1, keepdim=True)
    return ((before - after).abs() <= tolerance).all(1).double()


__all__ = ["completeness", "completeness_gap", "input_invariance", "non_sensitivity", "shifted_input"]
