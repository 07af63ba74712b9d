"""Robustness, randomisation and axiomatic metrics against Quantus 0.6 on the same model, pictures and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_reference import reference_batch

from convscope.analysis.metrics import axiomatic, randomisation, robustness

quantus = pytest.importorskip("quantus")


def gradient(model):
    """The input gradient of the class logit, summed over channels ``[B,1,H,W]``: the explanation under test."""
    def explain(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.detach().clone().requires_grad_(True)
        model(x).gather(1, y.view(-1, 1)).sum().backward()
        return x.grad.sum(1, keepdim=True)
    return explain


def quantus_explain(model, inputs, targets, **kwargs):
    x, y = torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets).long()
    return gradient(model)(x, y).numpy()


@pytest.mark.parametrize(("ours", "theirs"), [(robustness.max_sensitivity, quantus.MaxSensitivity),
                                              (robustness.avg_sensitivity, quantus.AvgSensitivity)])
def test_sensitivity_equals_quantus_on_the_same_noise(ours, theirs):
    model, x, y, _, _ = reference_batch(count=3, side=16)
    noise = robustness.uniform_noise(x, 5, 0.2, seed=0)
    draws = iter(noise.flatten(2).numpy())

    def same_noise(arr, indices, indexed_axes=None, **kwargs):
        return arr + next(draws)

    metric = theirs(nr_samples=5, perturb_func=same_noise, normalise=False, disable_warnings=True)
    a = gradient(model)(x, y)
    expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                      explain_func=quantus_explain, device="cpu")
    got = ours(gradient(model), x, y, a, noise=noise)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_sensitivity_draws_with_its_seed_and_is_zero_without_noise():
    model, x, y, _, _ = reference_batch(count=2, side=16)
    explain = gradient(model)
    one = robustness.avg_sensitivity(explain, x, y, samples=3, seed=1)
    assert torch.equal(one, robustness.avg_sensitivity(explain, x, y, samples=3, seed=1))
    assert robustness.max_sensitivity(explain, x, y, samples=2, radius=0.0).tolist() == [0.0, 0.0]


def test_random_logit_equals_quantus_on_the_same_other_class():
    model, x, y, _, _ = reference_batch(count=3, side=16)
    np.random.seed(42)  # Quantus' draw of the other classes
    offset = np.random.randint(0, 4, len(y))
    other = torch.tensor([[c for c in range(5) if c != int(t)][o] for t, o in zip(y, offset, strict=True)])

    def pearson(a, b, batched=True, **kwargs):
        return quantus.similarity_func.correlation_pearson(a, b, batched=True)

    metric = quantus.RandomLogit(num_classes=5, seed=42, similarity_func=pearson, disable_warnings=True)
    a = gradient(model)(x, y)
    expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                      explain_func=quantus_explain, device="cpu")

    def ours_pearson(p, q):
        return torch.as_tensor(pearson(p.flatten(1).numpy(), q.flatten(1).numpy()))

    got = randomisation.random_logit(gradient(model), x, y, a, classes=5, other=other, similarity=ours_pearson)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_other_classes_never_pick_the_class_itself():
    y = torch.arange(5).repeat(40)
    other = randomisation.other_classes(y, 5, seed=0)
    assert (other != y).all() and set(other.tolist()) == set(range(5))


def test_random_logit_of_a_class_blind_explanation_is_one():
    model, x, y, _, _ = reference_batch(count=2, side=16)
    same = randomisation.random_logit(lambda p, c: p.sum(1), x, y, classes=5)
    assert same.tolist() == pytest.approx([1.0, 1.0])


def test_completeness_holds_for_a_map_that_sums_to_the_change_where_quantus_asks_for_exact_equality():
    model, x, y, _, _ = reference_batch(count=3, side=16)
    with torch.no_grad():
        change = model(x).gather(1, y.view(-1, 1))[:, 0] - model(torch.zeros_like(x)).gather(1, y.view(-1, 1))[:, 0]
    a = torch.zeros(3, 1, 16, 16)
    a[..., :8, :] = change.view(-1, 1, 1, 1) / 128 * (1 + 1e-7)  # off by rounding only
    assert axiomatic.completeness(model, x, y, a).tolist() == [1.0, 1.0, 1.0]
    assert axiomatic.completeness_gap(model, x, y, a).max() < 1e-5
    assert axiomatic.completeness(model, x, y, 2 * a).tolist() == [0.0, 0.0, 0.0]
    metric = quantus.Completeness(perturb_baseline=0.0, normalise=False, disable_warnings=True)
    exact = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu")
    assert not any(exact)  # Quantus 0.6 compares the sums with ==


def test_relative_input_stability_equals_quantus_on_the_same_noise():
    model, x, y, _, _ = reference_batch(count=3, side=16)
    noise = robustness.uniform_noise(x, 4, 0.05, seed=0)
    draws = iter(noise.flatten(2).numpy())

    def same_noise(arr, indices, indexed_axes=None, **kwargs):
        return arr + next(draws)

    metric = quantus.RelativeInputStability(nr_samples=4, perturb_func=same_noise, normalise=False,
                                            return_nan_when_prediction_changes=False, disable_warnings=True)
    a = gradient(model)(x, y)
    expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                      explain_func=quantus_explain, device="cpu")
    got = robustness.relative_input_stability(gradient(model), x, y, a, noise=noise)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_relative_input_stability_skips_copies_whose_class_changes():
    model, x, y, _, _ = reference_batch(count=2, side=16)
    noise = robustness.uniform_noise(x, 3, 0.05, seed=0)

    def only_the_originals(p):  # class 0 for the original pictures, class 1 for any other
        original = (p.flatten(1)[:, None] == x.flatten(1)[None]).all(-1).any(1).double()
        return torch.stack([original, 1 - original], 1)

    def constant(p):
        return torch.ones(len(p), 2)

    every = robustness.relative_input_stability(gradient(model), x, y, noise=noise)
    assert torch.equal(robustness.relative_input_stability(gradient(model), x, y, noise=noise, model=constant), every)
    changed = robustness.relative_input_stability(gradient(model), x, y, noise=noise, model=only_the_originals)
    assert changed.isnan().all() and not every.isnan().any()


@pytest.mark.parametrize("name", ["relative_output_stability", "local_lipschitz_estimate"])
def test_output_stability_and_lipschitz_estimate_equal_quantus_on_the_same_noise(name):
    model, x, y, _, _ = reference_batch(count=3, side=16)
    noise = robustness.uniform_noise(x, 4, 0.05, seed=0)
    draws = iter(noise.flatten(2).numpy())

    def same_noise(arr, indices, indexed_axes=None, **kwargs):
        return arr + next(draws)

    kind = {"relative_output_stability": quantus.RelativeOutputStability,
            "local_lipschitz_estimate": quantus.LocalLipschitzEstimate}[name]
    metric = kind(nr_samples=4, perturb_func=same_noise, normalise=False, return_nan_when_prediction_changes=False,
                  disable_warnings=True)
    a = gradient(model)(x, y)
    expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                      explain_func=quantus_explain, device="cpu", softmax=False)
    got = getattr(robustness, name)(gradient(model), x, y, a, noise=noise, model=model)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_non_sensitivity_equals_quantus_pixel_by_pixel():
    model, x, y, _, _ = reference_batch(count=2, side=8)
    a = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a[a < 0.4] = 0  # pixels said to matter not at all
    metric = quantus.NonSensitivity(perturb_baseline=0.0, normalise=False, disable_warnings=True)
    expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu")
    got = axiomatic.non_sensitivity(model, x, y, a)
    np.testing.assert_array_equal(got.numpy(), np.array(expected, dtype=float))
    assert got.min() > 0
    groups = axiomatic.non_sensitivity(model, x, y, a, features_in_step=4)
    assert groups.shape == (2,) and (groups <= 16).all()


def test_input_invariance_holds_for_the_gradient_and_not_for_gradient_times_input():
    # Kindermans et al. 2017: the gradient ignores a constant input shift; gradient × input does not
    model, x, y, _, _ = reference_batch(count=3, side=16)

    def times_input(p, c):
        return gradient(model)(p, c) * p

    assert axiomatic.input_invariance(model, x, y, gradient(model)).tolist() == [1.0, 1.0, 1.0]
    assert axiomatic.input_invariance(model, x, y, times_input).tolist() == [0.0, 0.0, 0.0]
    assert axiomatic.input_invariance(model, x, y, gradient(model), norm_rtol=0.05).tolist() == [1.0, 1.0, 1.0]
    assert axiomatic.input_invariance(model, x, y, times_input, norm_rtol=0.05).tolist() == [0.0, 0.0, 0.0]
    assert not model._forward_pre_hooks  # the model is left as found
    with pytest.raises(RuntimeError), axiomatic.shifted_input(model, 1.0):
        raise RuntimeError
    assert not model._forward_pre_hooks


def test_relative_representation_stability_equals_quantus_on_the_same_layer_and_noise():
    model, x, y, _, _ = reference_batch(count=3, side=16)
    noise = robustness.uniform_noise(x, 4, 0.05, seed=0)
    draws = iter(noise.flatten(2).numpy())

    def same_noise(arr, indices, indexed_axes=None, **kwargs):
        return arr + next(draws)

    metric = quantus.RelativeRepresentationStability(nr_samples=4, perturb_func=same_noise, normalise=False,
                                                     layer_names=["features.4"], disable_warnings=True,
                                                     return_nan_when_prediction_changes=False)
    a = gradient(model)(x, y)
    expected = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                      explain_func=quantus_explain, device="cpu")
    got = robustness.relative_representation_stability(gradient(model), x, y, a, noise=noise,
                                                       representation=model.features[:5])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_input_invariance_agrees_with_quantus_on_gradient_times_input_where_quantus_leaves_pixels_unshifted():
    # Quantus 0.6 folds the shift into the first convolution's bias (exact here: no padding), but its shifted
    # picture keeps some pixels unshifted, so it fails the gradient, which is input-invariant (Kindermans et al.)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 14 * 14, 5)).eval()
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    shifted = []

    def explain_with(net, times_input):
        return lambda p, c: gradient(net)(p, c) * (p if times_input else 1)

    def verdicts(times_input):
        def their_explain(model, inputs, targets, **kwargs):
            shifted.append(inputs.copy())
            p, c = torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets).long()
            return explain_with(model, times_input)(p, c).numpy()

        metric = quantus.InputInvariance(abs=False, normalise=False, disable_warnings=True)
        theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                        a_batch=explain_with(model, times_input)(x, y).numpy(), explain_func=their_explain,
                        device="cpu")
        return [float(v) for v in theirs], axiomatic.input_invariance(model, x, y, explain_with(model, times_input))

    theirs, ours = verdicts(times_input=True)
    assert ours.tolist() == theirs == [0.0, 0.0, 0.0]
    theirs, ours = verdicts(times_input=False)
    assert ours.tolist() == [1.0, 1.0, 1.0] and 0.0 in theirs
    assert np.isclose(shifted[-1] - x.numpy(), 0).any()  # pixels Quantus left where they were
