"""Complexity and localisation metrics equal Quantus 0.6's on the same maps and masks (to 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_reference import reference_batch

from convscope.analysis.metrics import complexity, localisation

quantus = pytest.importorskip("quantus")


def _quantus_per_picture(metric, x, y, a, s=None):
    """Quantus called one picture at a time: its normalisation divides a whole batch by the batch's maximum."""
    out = []
    for i in range(len(x)):
        mask = None if s is None else s[i:i + 1].numpy().astype(float)
        out += metric(model=None, x_batch=x[i:i + 1].numpy(), y_batch=y[i:i + 1].numpy(),
                      a_batch=a[i:i + 1].numpy().copy(), s_batch=mask)
    return np.array(out, dtype=float)


@pytest.mark.parametrize(("ours", "theirs"), [
    (complexity.sparseness, lambda: quantus.Sparseness(disable_warnings=True)),
    (complexity.complexity, lambda: quantus.Complexity(disable_warnings=True)),
    (lambda a: complexity.effective_complexity(a, eps=0.3),
     lambda: quantus.EffectiveComplexity(eps=0.3, disable_warnings=True)),
])
def test_complexity_equals_quantus(ours, theirs):
    _, x, y, a, _ = reference_batch()
    expected = _quantus_per_picture(theirs(), x, y, a)
    np.testing.assert_allclose(ours(a).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_complexity_normalises_each_map_by_itself():
    _, _, _, a, _ = reference_batch()
    alone = complexity.effective_complexity(a[1:2], eps=0.3)
    together = complexity.effective_complexity(torch.cat([a[1:2], 100 * a[:1]]), eps=0.3)[:1]
    assert alone == together


@pytest.mark.parametrize(("ours", "theirs"), [
    (localisation.pointing_game, lambda: quantus.PointingGame(disable_warnings=True)),
    (localisation.attribution_localisation, lambda: quantus.AttributionLocalisation(disable_warnings=True)),
    (lambda a, s: localisation.top_k_intersection(a, s, k=50),
     lambda: quantus.TopKIntersection(k=50, disable_warnings=True)),
    (lambda a, s: localisation.top_k_intersection(a, s, k=50, concept_influence=True),
     lambda: quantus.TopKIntersection(k=50, concept_influence=True, disable_warnings=True)),
    (localisation.relevance_mass_accuracy, lambda: quantus.RelevanceMassAccuracy(disable_warnings=True)),
    (localisation.relevance_rank_accuracy, lambda: quantus.RelevanceRankAccuracy(disable_warnings=True)),
    (localisation.auc, lambda: quantus.AUC(disable_warnings=True)),
])
def test_localisation_equals_quantus(ours, theirs):
    _, x, y, a, s = reference_batch()
    expected = _quantus_per_picture(theirs(), x, y, a, s)
    np.testing.assert_allclose(ours(a, s).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_auc_counts_ties_half():
    a = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    s = torch.tensor([[[False, True], [False, False]]])
    assert localisation.auc(a, s).item() == pytest.approx((1 + 0.5 + 1) / 3)


def test_energy_pointing_game_is_the_share_of_the_scaled_map_in_the_box():
    a = torch.tensor([[[1.0, 3.0], [5.0, 1.0]]])  # scaled: 0, 0.5, 1, 0
    s = torch.tensor([[[False, True], [False, False]]])
    assert localisation.energy_pointing_game(a, s).item() == pytest.approx(0.5 / 1.5)


def test_an_empty_mask_scores_nan():
    _, _, _, a, s = reference_batch()
    s[0] = False
    for metric in (localisation.pointing_game, localisation.relevance_mass_accuracy, localisation.auc,
                   localisation.energy_pointing_game):
        values = metric(a, s)
        assert values[0].isnan() and not values[1:].isnan().any()
