"""Faithfulness metrics equal Quantus 0.6's on the same small CNN, pictures, maps and baseline (to 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_reference import reference_batch, revealing_monotonicity

from convscope.analysis.metrics import faithfulness as F

quantus = pytest.importorskip("quantus")


def _theirs(metric, model, x, y, a, **call):
    return np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy().copy(),
                           device="cpu", **call), dtype=float)


@pytest.fixture(scope="module")
def batch():
    return reference_batch(count=3, side=16)


def test_pixel_flipping_equals_quantus(batch):
    model, x, y, a, _ = batch
    theirs = _theirs(quantus.PixelFlipping(features_in_step=16, perturb_baseline=0.0, normalise=False,
                                           disable_warnings=True), model, x, y, a)
    ours = F.pixel_flipping(model, x, y, a, features_in_step=16, baseline=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_equals_quantus(batch, order):
    model, x, y, a, _ = batch
    theirs = _theirs(quantus.RegionPerturbation(patch_size=4, regions_evaluation=10, order=order,
                                                perturb_baseline=0.0, normalise=False, disable_warnings=True),
                     model, x, y, a)
    ours = F.region_perturbation(model, x, y, a, patch_size=4, regions=10, order=order, baseline=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_region_perturbation_pads_as_quantus_when_the_side_is_no_multiple_of_the_patch():
    model, x, y, a, _ = reference_batch(count=2, side=15)
    theirs = _theirs(quantus.RegionPerturbation(patch_size=4, regions_evaluation=16, perturb_baseline=0.0,
                                                normalise=False, disable_warnings=True), model, x, y, a)
    ours = F.region_perturbation(model, x, y, a, patch_size=4, regions=16, baseline=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_selectivity_equals_quantus(batch):
    model, x, y, a, _ = batch
    theirs = _theirs(quantus.Selectivity(patch_size=4, perturb_baseline=0.0, normalise=False, disable_warnings=True),
                     model, x, y, a)
    ours = F.selectivity(model, x, y, a, patch_size=4, baseline=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_faithfulness_estimate_equals_quantus(batch):
    model, x, y, a, _ = batch
    theirs = _theirs(quantus.FaithfulnessEstimate(features_in_step=8, perturb_baseline=0.0, normalise=False,
                                                  disable_warnings=True), model, x, y, a)
    ours = F.faithfulness_estimate(model, x, y, a, features_in_step=8, baseline=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_monotonicity_correlation_equals_quantus_with_a_fixed_baseline(batch):
    model, x, y, a, _ = batch  # a fixed baseline: every one of Quantus' samples is the same picture
    theirs = _theirs(quantus.MonotonicityCorrelation(features_in_step=8, nr_samples=2, perturb_baseline=0.0,
                                                     normalise=False, disable_warnings=True), model, x, y, a)
    ours = F.monotonicity_correlation(model, x, y, a, features_in_step=8, baseline=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_faithfulness_correlation_equals_quantus_on_the_same_subsets(batch):
    model, x, y, a, _ = batch
    runs, size, pixels = 12, 20, x.shape[-1] * x.shape[-2]
    np.random.seed(3)  # Quantus draws with numpy: one subset per picture, run after run
    drawn = [[np.random.choice(pixels, size, replace=False) for _ in range(len(x))] for _ in range(runs)]
    subsets = torch.as_tensor(np.array(drawn)).permute(1, 0, 2)
    np.random.seed(3)
    theirs = _theirs(quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size, perturb_baseline=0.0,
                                                     return_aggregate=False,
                                                     normalise=False, disable_warnings=True), model, x, y, a)
    ours = F.faithfulness_correlation(model, x, y, a, subsets=subsets, baseline=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)


def test_faithfulness_correlation_counts_a_pixel_given_twice_once(batch):
    model, x, y, a, _ = batch
    subsets = torch.tensor([[[0, 0, 5], [7, 9, 9], [3, 4, 4], [1, 2, 8]]]).expand(len(x), -1, -1)
    again = torch.tensor([[[0, 5, 5], [7, 7, 9], [3, 3, 4], [1, 2, 8]]]).expand(len(x), -1, -1)  # others twice
    ours = F.faithfulness_correlation(model, x, y, a, subsets=subsets)
    assert torch.equal(ours, F.faithfulness_correlation(model, x, y, a, subsets=again))


def test_faithfulness_correlation_draws_with_its_seed(batch):
    model, x, y, a, _ = batch
    one = F.faithfulness_correlation(model, x, y, a, runs=8, subset_size=10, seed=1)
    assert torch.equal(one, F.faithfulness_correlation(model, x, y, a, runs=8, subset_size=10, seed=1))
    assert not torch.equal(one, F.faithfulness_correlation(model, x, y, a, runs=8, subset_size=10, seed=2))


def test_monotonicity_follows_arya_where_quantus_never_reveals_a_pixel(batch):
    model, x, y, a, _ = batch
    # Quantus 0.6 fills the "revealed" pixels with the baseline again: every map passes, even one in reverse order
    metric = quantus.Monotonicity(features_in_step=32, perturb_baseline=0.0, abs=False, normalise=False,
                                  disable_warnings=True)
    assert _theirs(metric, model, x, y, a).all() and _theirs(metric, model, x, y, -a).all()
    ours, reversed_ = (F.monotonicity(model, x, y, m, features_in_step=32, abs=False) for m in (a, -a))
    assert not (ours.bool().all() and reversed_.bool().all())


@pytest.mark.parametrize("abs_", [True, False])
def test_monotonicity_equals_quantus_with_its_reveal_corrected(abs_):
    model, x, y, a, _ = reference_batch(count=16, side=8)
    metric = revealing_monotonicity(quantus)(features_in_step=16, perturb_baseline=0.0, abs=abs_, normalise=False,
                                             disable_warnings=True)
    theirs = _theirs(metric, model, x, y, a)
    assert 0 < theirs.sum() < len(theirs)  # some pictures pass, some do not
    ours = F.monotonicity(model, x, y, a, features_in_step=16, abs=abs_)
    np.testing.assert_array_equal(ours.numpy(), theirs)


@pytest.mark.parametrize("batch_size", [None, 1, 5, 100])
def test_monotonicity_stops_a_picture_at_its_first_fall_with_the_answer_of_its_whole_curve(batch_size):
    model, x, y, a, _ = reference_batch(count=16, side=8)
    ranks = a.flatten(1).abs().argsort(dim=1, stable=True).argsort(dim=1)  # 0: the least important pixel

    def hidden(b, part):
        return (ranks[b][None] >= 16 * torch.arange(1, 5)[part, None]).view(-1, 1, 8, 8)

    curves = F.perturbed_scores(model, x, y, hidden, 4, 0.0, softmax=True)
    whole = (curves.diff(dim=1) >= 0).all(1).double()
    seen = []

    def counting(pictures):
        seen.append(len(pictures))
        return model(pictures)

    ours = F.monotonicity(counting, x, y, a, features_in_step=16, batch_size=batch_size)
    assert torch.equal(ours, whole) and 0 < whole.sum() < len(whole)
    if batch_size in (1, 5):  # several passes: the steps after a fall are never scored
        assert sum(seen) < curves.numel()
    assert max(seen) <= (batch_size or 64)


def test_monotonicity_by_hand(tiny_model):
    # TinyNet's "bright" class grows with every bright pixel: revealing them in any order never lowers it
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    probability = F.monotonicity(tiny_model, x, [0], torch.rand(1, 8, 8), features_in_step=8, softmax=False)
    assert probability.tolist() == [1.0]


def test_area_is_over_the_unit_interval():
    assert F.area(torch.tensor([[1.0, 1.0, 1.0]])).item() == pytest.approx(1.0)
    assert F.area(torch.tensor([[0.0, 1.0]])).item() == pytest.approx(0.5)


def test_irof_equals_quantus_picture_by_picture(batch, monkeypatch):
    model, x, y, a, _ = batch
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # Quantus 0.6 calls np.trapz, gone in NumPy 2
    metric = quantus.IROF(perturb_baseline=0.0, normalise=False, return_aggregate=False, disable_warnings=True)
    for i in range(len(x)):  # one at a time: Quantus pads a batch's shorter curves with zeros
        theirs = _theirs(metric, model, x[i:i + 1], y[i:i + 1], a[i:i + 1])
        ours = F.irof(model, x[i:i + 1], y[i:i + 1], a[i:i + 1], baseline=0.0)
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-5)
    together = F.irof(model, x, y, a, baseline=0.0)
    alone = torch.cat([F.irof(model, x[i:i + 1], y[i:i + 1], a[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_captums_on_the_same_noise(batch, normalize):
    captum_metrics = pytest.importorskip("captum.metrics")
    model, x, y, a, _ = batch
    noise = torch.randn(5, *x.shape, generator=torch.Generator().manual_seed(0)) * 0.05
    picture_major = noise.transpose(0, 1).flatten(0, 1)  # Captum repeats each picture S times in a row

    def perturb(inputs):
        return picture_major, inputs - picture_major

    expected = captum_metrics.infidelity(model, perturb, x, a.expand_as(x), target=y, n_perturb_samples=5,
                                         normalize=normalize)
    ours = F.infidelity(model, x, y, a, noise=noise, normalize=normalize)
    np.testing.assert_allclose(ours.numpy(), expected.double().numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("distance", ["seuclidean", "euclidean"])
def test_sufficiency_equals_quantus(distance, monkeypatch):
    import quantus.metrics.faithfulness.sufficiency as theirs_module
    from scipy.spatial.distance import cdist

    # Quantus 0.6 passes V=None to scipy's cdist, which today's SciPy refuses for either distance
    monkeypatch.setattr(theirs_module, "cdist", lambda a, b, metric, V=None: cdist(a, b, metric))
    model, x, y, a, _ = reference_batch(count=8, side=8)
    a = a[:2].repeat(4, 1, 1, 1) + 0.05 * a  # two families of near-identical maps
    metric = quantus.Sufficiency(threshold=0.6, distance_func=distance, disable_warnings=True)
    theirs = _theirs(metric, model, x, y, a)
    ours = F.sufficiency(model, x, a, threshold=0.6, distance=distance)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-7)
    assert 0 < ours.sum()  # some maps are close enough to count


def test_sensitivity_n_is_one_for_gradient_times_input_on_a_linear_model():
    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3, bias=False))
    x = torch.rand(2, 1, 8, 8)
    y = torch.tensor([0, 2])
    a = linear[1].weight[y].view(2, 1, 8, 8).detach() * x  # removing a subset drops the logit by its sum exactly
    values = F.sensitivity_n(linear, x, y, a, sizes=(1, 5, 20), runs=30)
    assert values.shape == (2, 3)
    torch.testing.assert_close(values, torch.ones(2, 3, dtype=torch.float64))
    noise = F.sensitivity_n(linear, x, y, torch.rand(2, 1, 8, 8), sizes=(5,), runs=30)
    assert (noise < 0.99).all()
