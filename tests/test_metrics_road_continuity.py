"""ROAD with its noisy linear imputation, and continuity, against hand-solved values and Quantus 0.6."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_reference import reference_batch
from test_metrics_robustness_randomisation_axiomatic import gradient, quantus_explain
from torch import nn

from convscope.analysis.metrics import faithfulness as F
from convscope.analysis.metrics import robustness as R
from convscope.analysis.metrics.imputation import linear_imputation, noisy_linear_imputation

quantus = pytest.importorskip("quantus")


@pytest.mark.parametrize("solver", ["direct", "cg"])
def test_linear_imputation_solves_a_tiny_picture_by_hand(solver):
    # centre: the weighted mean of its 8 neighbours (1/6 beside, 1/12 diagonal) = 51/12 + v/12 with v the removed
    # corner; corner: (centre/12 + 6/6 + 8/6) / (5/12). Solved: centre 283/59, corner 387/59.
    x = torch.tensor([[1.0, 2, 3], [4, 0, 6], [7, 8, 0]]).view(1, 1, 3, 3)
    removed = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    removed[0, 0, 1, 1] = removed[0, 0, 2, 2] = True
    filled = linear_imputation(x, removed, solver=solver)[0, 0]
    assert filled[1, 1].item() == pytest.approx(283 / 59, abs=1e-12)
    assert filled[2, 2].item() == pytest.approx(387 / 59, abs=1e-12)
    assert torch.equal(filled[~removed[0, 0]], x[0, 0][~removed[0, 0]].double())


@pytest.mark.parametrize("solver", ["direct", "cg"])
def test_linear_imputation_equals_quantus_and_noise_has_its_spread(solver):
    from quantus.functions.perturb_func import noisy_linear_imputation as theirs

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 20, generator=g, dtype=torch.float64)
    order = torch.randn(2, 400, generator=g).argsort(1)
    for share in (0.05, 0.5, 0.95):
        chosen = order[:, :int(400 * share)]
        removed = torch.zeros(2, 400, dtype=torch.bool).scatter_(1, chosen, True).view(2, 1, 20, 20)
        expected = np.stack([theirs(x[b].numpy(), chosen[b].numpy(), noise=0.0) for b in range(2)])
        np.testing.assert_allclose(linear_imputation(x, removed, solver=solver).numpy(), expected, rtol=0, atol=1e-9)
    noisy = noisy_linear_imputation(x, removed, noise=0.1, seed=0)
    spread = (noisy - linear_imputation(x, removed))[removed.expand_as(x)]
    assert spread.std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(noisy[~removed.expand_as(x)], x[~removed.expand_as(x)])


def test_linear_imputation_refuses_a_picture_with_nothing_left_and_an_unknown_solver():
    with pytest.raises(ValueError, match="every pixel removed"):
        linear_imputation(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="'direct' or 'cg'"):
        linear_imputation(torch.rand(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool), solver="lu")


class Recording(nn.Module):
    """A linear classifier of 16×16 pictures (its class flips as pixels go) that keeps every batch it sees."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.linear = nn.Linear(channels * 256, 5)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().double().clone())
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_road_without_noise_equals_quantus_picture_for_picture(order):
    _, x, _, a, _ = reference_batch(count=6, side=16)
    model = Recording().eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    percentages = [1, 10, 30, 50, 70, 90, 99]
    ours_a = a if order == "morf" else -a  # Quantus 0.6 removes the most important first only: LeRF is MoRF of −a
    metric = quantus.ROAD(percentages=percentages, noise=0.0, normalise=False, disable_warnings=True)
    model.seen.clear()
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=ours_a.numpy(), device="cpu")
    their_pictures = torch.cat(model.seen)
    model.seen.clear()
    ours = F.road(model, x, y, a, percentages=percentages, order=order, noise=0.0)
    np.testing.assert_allclose(torch.cat(model.seen).numpy(), their_pictures.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.mean(0).numpy(), np.array(list(theirs.values())), atol=1e-12)
    assert 0 < ours.mean() < 1  # the class does flip: the comparison can fail


def test_road_with_noise_agrees_with_quantus_within_sampling_error():
    _, x, _, a, _ = reference_batch(count=24, side=16, seed=2)
    model = Recording().eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    percentages = list(range(5, 100, 10))
    np.random.seed(0)
    theirs = quantus.ROAD(percentages=percentages, noise=0.05, normalise=False, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu")
    ours = F.road(model, x, y, a, percentages=percentages, noise=0.05, seed=0)
    # each curve is the mean of 24 × 10 kept / lost outcomes: their difference's standard error is ≤ √(2·¼/240)
    assert abs(ours.mean().item() - np.mean(list(theirs.values()))) <= 3 * (0.5 / 240) ** 0.5
    assert torch.equal(ours, F.road(model, x, y, a, percentages=percentages, noise=0.05, seed=0))
    assert torch.equal(ours, F.road(model, x, y, a, percentages=percentages, noise=0.05, seed=0, batch_size=5))


def test_road_removes_the_share_of_pixels_in_every_channel_where_quantus_fails_on_colour():
    _, x, _, a, _ = reference_batch(count=2, channels=3, side=16)
    model = Recording(channels=3).eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    with pytest.raises(IndexError):  # Quantus 0.6 ranks the 3·16·16 broadcast values, then imputes pixel numbers
        quantus.ROAD(percentages=[50], noise=0.0, normalise=False, disable_warnings=True)(
            model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu")
    model.seen.clear()
    F.road(model, x, y, a, percentages=[50], noise=0.0)
    changed = (model.seen[0] != x.double()).any(1)
    assert changed.flatten(1).sum(1).tolist() == [128, 128]
    assert torch.equal(changed, (model.seen[0] != x.double()).all(1))  # every channel of a removed pixel


def test_road_refuses_removing_every_pixel_and_an_unknown_order():
    model, x, y, a, _ = reference_batch(count=1, side=8)
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        F.road(model, x, y, a, percentages=[100])
    with pytest.raises(ValueError, match="morf"):
        F.road(model, x, y, a, order="random")


@pytest.mark.parametrize(("channels", "side", "steps"), [(1, 16, 28), (3, 16, 10), (1, 15, 7)])
def test_continuity_equals_quantus(channels, side, steps):
    model, x, y, _, _ = reference_batch(count=3, channels=channels, side=side)
    a = gradient(model)(x, y)
    metric = quantus.Continuity(nr_steps=steps, normalise=False, disable_warnings=True)
    expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                      explain_func=quantus_explain, device="cpu")
    got = R.continuity(gradient(model), x, y, a, steps=steps, normalise=False)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_continuity_normalises_each_map_where_quantus_normalises_the_batch():
    model, x, y, _, _ = reference_batch(count=3, side=16)
    a = gradient(model)(x, y)
    metric = quantus.Continuity(nr_steps=12, normalise=True, disable_warnings=True)
    got = R.continuity(gradient(model), x, y, a, steps=12)
    alone = [metric(model=model, x_batch=x[b:b + 1].numpy(), y_batch=y[b:b + 1].numpy(),
                    a_batch=a[b:b + 1].numpy(), explain_func=quantus_explain, device="cpu")[0] for b in range(3)]
    np.testing.assert_allclose(got.numpy(), alone, rtol=1e-5)  # one picture per batch: the same normalisation
    together = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                      explain_func=quantus_explain, device="cpu")
    assert not np.allclose(together, alone, rtol=1e-3)  # Quantus' value depends on the other pictures


def test_translations_move_the_picture_and_fill_with_its_minimum():
    x = torch.arange(1.0, 5.0).view(1, 1, 1, 4)
    moved = R.translations(x, [-2, 0, 1, 4])[:, 0, 0, 0].tolist()
    assert moved == [[3, 4, 1, 1], [1, 2, 3, 4], [1, 1, 2, 3], [1, 1, 1, 1]]


def test_continuity_of_a_map_that_ignores_the_picture_is_zero():
    model, x, y, _, _ = reference_batch(count=2, side=8)
    constant = R.continuity(lambda p, c: torch.ones(len(p), 8, 8), x, y, steps=5)
    assert constant.tolist() == [0.0, 0.0]
