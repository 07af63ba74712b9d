"""Localisation: does the explanation fall on the object? Each metric compares maps ``[B,H,W]`` with masks
``[B,H,W]`` (True on the object: a segmentation or a filled box); ↑ for all. A picture with an empty mask scores
NaN. Where Quantus 0.6 takes |attributions| by default (attribution localisation) so does convscope.

- Pointing game (Zhang et al. 2016, https://arxiv.org/abs/1608.00507): the map's maximum lies on the object.
- Attribution localisation (Kohlbrenner et al. 2020, https://arxiv.org/abs/1910.09840): share of the (positive)
  attribution inside the mask.
- Top-k intersection (Theiner et al. 2021, https://arxiv.org/abs/2104.14995): share of the k highest pixels
  inside the mask.
- Relevance mass and relevance rank accuracy (Arras et al. 2022, https://arxiv.org/abs/2003.07258): share of the
  attribution inside the mask; share of the |mask| highest pixels inside it.
- AUC (Fawcett 2006, https://doi.org/10.1016/j.patrec.2005.10.010): ROC area of the map as a detector of the mask.
- Energy-based pointing game (Wang et al. 2020, Score-CAM, https://arxiv.org/abs/1910.01279): share of the
  min-max normalised map's energy inside the box.
"""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.analysis.metrics.common import per_pixel
from convscope.analysis.similarity import average_ranks


def _pair(attributions: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    a = per_pixel(attributions).flatten(1)
    s = masks.to(a.device)
    s = (s[:, 0] if s.dim() == 4 else s).flatten(1).bool()
    if s.shape != a.shape:
        raise ValueError(f"one mask per map at the map's size is needed: maps {tuple(attributions.shape)}, "
                         f"masks {tuple(masks.shape)}")
    return a, s


def _empty_is_nan(values: Tensor, s: Tensor) -> Tensor:
    return values.masked_fill(s.sum(1) == 0, float("nan"))


def pointing_game(attributions: Tensor, masks: Tensor) -> Tensor:
    """1.0 where a pixel holding the map's maximum lies in the mask, else 0.0 ``[B]``."""
    a, s = _pair(attributions, masks)
    peak = a == a.amax(1, keepdim=True)
    return _empty_is_nan((peak & s).any(1).double(), s)


def attribution_localisation(attributions: Tensor, masks: Tensor, *, abs: bool = True,
                             positive: bool = False, weighted: bool = False) -> Tensor:
    """Attribution inside the mask over all attribution ``[B]`` (``weighted``: times the mask's share of the
    picture; Quantus 0.6 uses the share of a slice of the *batch* there instead, a slip)."""
    a, s = _pair(attributions, masks)
    a = a.abs() if abs else a
    a = a.clamp_min(0) if positive else a
    ratio = (a * s).sum(1) / (a.sum(1) + 1e-9)
    ratio = ratio.masked_fill(ratio > 1, float("nan"))
    if weighted:
        ratio = ratio * s.double().mean(1)
    return _empty_is_nan(ratio, s)


def top_k_intersection(attributions: Tensor, masks: Tensor, *, k: int = 1000, concept_influence: bool = False,
                       abs: bool = False) -> Tensor:
    """Share of the ``k`` highest pixels that lie in the mask ``[B]`` (``concept_influence``: over the share
    expected by chance, the mask's share of the picture)."""
    a, s = _pair(attributions, masks)
    if not 0 < k <= a.shape[1]:
        raise ValueError(f"k must be between 1 and the number of pixels ({a.shape[1]}), got {k}")
    a = a.abs() if abs else a
    top = a.sort(dim=1, descending=True, stable=True).indices[:, :k]
    share = s.gather(1, top).double().mean(1)
    if concept_influence:
        share = share * a.shape[1] / s.sum(1)
    return _empty_is_nan(share, s)


def relevance_mass_accuracy(attributions: Tensor, masks: Tensor, *, abs: bool = False) -> Tensor:
    """Attribution inside the mask over all attribution ``[B]``."""
    a, s = _pair(attributions, masks)
    a = a.abs() if abs else a
    return _empty_is_nan((a * s).sum(1) / a.sum(1), s)


def relevance_rank_accuracy(attributions: Tensor, masks: Tensor, *, abs: bool = False) -> Tensor:
    """Share of the |mask| highest pixels that lie in the mask ``[B]``."""
    a, s = _pair(attributions, masks)
    a = a.abs() if abs else a
    order = a.sort(dim=1, descending=True, stable=True).indices
    inside = s.gather(1, order)
    size = s.sum(1, keepdim=True)
    first = torch.arange(a.shape[1], device=a.device)[None] < size
    return _empty_is_nan((inside & first).sum(1).double() / size[:, 0].clamp_min(1), s)


def auc(attributions: Tensor, masks: Tensor, *, abs: bool = False) -> Tensor:
    """Area under the ROC curve of the map as a score for "on the mask" ``[B]`` (ties count half: the
    Mann–Whitney statistic, equal to scikit-learn's ``roc_auc_score``)."""
    a, s = _pair(attributions, masks)
    a = a.abs() if abs else a
    ranks = average_ranks(a)
    positives = s.sum(1).double()
    negatives = s.shape[1] - positives
    value = ((ranks * s).sum(1) - positives * (positives + 1) / 2) / (positives * negatives)
    return value.masked_fill((positives == 0) | (negatives == 0), float("nan"))


def energy_pointing_game(attributions: Tensor, masks: Tensor) -> Tensor:
    """Share of the map's energy inside the mask ``[B]``, the map scaled to [0, 1] by its minimum and maximum
    as Score-CAM's evaluation code does."""
    a, s = _pair(attributions, masks)
    low, high = a.amin(1, keepdim=True), a.amax(1, keepdim=True)
    a = (a - low) / (high - low).clamp_min(torch.finfo(a.dtype).tiny)
    return _empty_is_nan((a * s).sum(1) / a.sum(1).clamp_min(torch.finfo(a.dtype).tiny), s)
