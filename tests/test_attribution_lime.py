"""LIME and Kernel SHAP over a feature mask or SLIC superpixels against Captum's Lime and KernelShap (fed the same
masked copies), and Kernel SHAP against the exact Shapley values found by enumerating every coalition."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for
from test_attribution_feature_ablation import blocks

from convscope.attribution import KernelShap, Lime
from convscope.attribution.lime import weighted_lasso

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = torch.tensor([3, 7])


def captum_given(method, model, x, mask, alpha=None):
    """Captum's Lime / KernelShap on ``x``, drawing convscope's copies instead of its own."""
    from captum._utils.models.linear_model import SkLearnLasso
    from captum.attr import KernelShap as CaptumKernelShap
    from captum.attr import Lime as CaptumLime

    draws = method.draws(int(mask.max()) + 1)

    def copies(inputs, **kwargs):  # a generator: Captum starts it again for every image
        for row in draws:
            yield row[None].long()

    if isinstance(method, KernelShap):
        reference = CaptumKernelShap(model.net)
        reference.perturb_func = copies
    else:  # scikit-learn's Lasso run to convergence, as convscope's (its default stops at a duality gap of 1e-4)
        reference = CaptumLime(model.net, perturb_func=copies,
                               interpretable_model=SkLearnLasso(alpha=alpha, tol=1e-12, max_iter=1_000_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reference.attribute(x.clone(), target=CLASSES, baselines=0.0, feature_mask=mask.expand_as(x),
                                   n_samples=method.samples, perturbations_per_eval=4).detach()


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "vit"])
@pytest.mark.parametrize("cls", [Lime, KernelShap])
def test_equals_captums_given_the_same_copies(name, cls):
    model = ARCHITECTURES[name][0]()
    x, mask = inputs_for(), blocks()  # 16 segments
    alpha = 1e-4  # the random models' scores are small: Captum's default 0.01 would set every coefficient to 0
    method = cls(model, feature_mask=mask, samples=60, seed=1, batch_size=7,
                 **({"alpha": alpha} if cls is Lime else {}))
    ours = method(x, CLASSES)
    theirs = captum_given(method, model, x, mask, alpha)
    # Captum fits in float32 (scikit-learn keeps its float32 arrays), convscope in float64; the scores are float32
    # from convscope's channels-last and Captum's NCHW convolutions.
    assert_relative(ours.expand_as(theirs), theirs, 1e-5 if cls is Lime else 5e-5)


def test_the_fits_equal_scikit_learns_in_float64():
    from sklearn.linear_model import Lasso, LinearRegression

    from convscope.attribution.kernel_shap import weighted_least_squares

    generator = torch.Generator().manual_seed(3)
    kept = torch.rand(80, 12, generator=generator) < 0.5
    scores = torch.randn(80, generator=generator, dtype=torch.float64)
    weights = torch.rand(80, generator=generator, dtype=torch.float64) + 0.1
    z, y, w = kept.double().numpy(), scores.numpy(), weights.numpy()
    lasso = Lasso(alpha=0.02, tol=1e-14, max_iter=1_000_000).fit(z, y, sample_weight=w)
    ours = weighted_lasso(kept, scores, weights, 0.02)
    assert (ours == 0).sum() >= 2 and torch.allclose(ours, torch.from_numpy(lasso.coef_), rtol=1e-9, atol=1e-11)
    least = LinearRegression().fit(z, y, sample_weight=w)
    assert torch.allclose(weighted_least_squares(kept, scores, weights), torch.from_numpy(least.coef_),
                          rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="did not reach its optimum .* give more samples= than segments"):
        weighted_lasso(kept[:10], scores[:10], weights[:10], 1e-7, sweeps=200)  # 10 copies, 12 segments
    few = slice(0, 8)  # fewer copies than segments: the least-norm solution, as scikit-learn's
    least = LinearRegression().fit(z[few], y[few], sample_weight=w[few])
    assert torch.allclose(weighted_least_squares(kept[few], scores[few], weights[few]),
                          torch.from_numpy(least.coef_), rtol=1e-8, atol=1e-10)


def exact_shapley(model, x, mask, target):
    """Every segment's Shapley value by enumerating all coalitions (baseline 0)."""
    count = int(mask.max()) + 1
    coalitions = list(itertools.product([False, True], repeat=count))
    keep = torch.tensor(coalitions)
    copies = torch.where(keep[:, mask[0, 0]][:, None], x, torch.zeros_like(x))
    with torch.no_grad():
        value = dict(zip(coalitions, model.net(copies)[:, target].double().tolist(), strict=True))
    shapley = torch.zeros(count, dtype=torch.float64)
    for coalition, score in value.items():
        size = sum(coalition)
        for f in range(count):
            if coalition[f]:
                without = coalition[:f] + (False,) + coalition[f + 1:]
                share = math.factorial(size - 1) * math.factorial(count - size) / math.factorial(count)
                shapley[f] += share * (score - value[without])
    return shapley


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "vit"])
def test_kernel_shap_approaches_the_exact_shapley_values(name):
    from convscope.attribution.kernel_shap import weighted_least_squares

    model = ARCHITECTURES[name][0]()
    x = inputs_for(1)
    mask = (torch.arange(64)[:, None] // 22 * 2 + torch.arange(64)[None, :] // 32)[None, None]  # 6 segments
    exact = exact_shapley(model, x, mask, 3)
    coalitions = torch.tensor(list(itertools.product([False, True], repeat=6)))
    with torch.no_grad():
        value = model.net(torch.where(coalitions[:, mask[0, 0]][:, None], x, 0.0))[:, 3].double()
    pixel = [tuple(torch.nonzero(mask[0, 0] == f)[0].tolist()) for f in range(6)]

    def estimate(method):
        """Kernel SHAP's fit on the method's own copies, their scores looked up among all 64 coalitions."""
        kept = method.draws(6)
        scores = value[(kept.long() * 2 ** torch.arange(5, -1, -1)).sum(1)]
        return method.fit(kept, scores, method.weights(None, None, kept, torch.tensor(6)))

    method = KernelShap(model, feature_mask=mask, samples=300, seed=0)
    maps = method(x, 3)
    found = torch.tensor([float(maps[0, 0, r, c]) for r, c in pixel], dtype=torch.float64)
    assert torch.allclose(found, estimate(method), rtol=1e-4, atol=1e-5 * float(exact.abs().max()))
    assert math.isclose(found.sum(), exact.sum(), rel_tol=1e-3)  # the two edge copies pin the sum
    errors = [float((estimate(KernelShap(model, feature_mask=mask, samples=n, seed=0)) - exact).abs().max())
              / float(exact.abs().max()) for n in (300, 300_000)]
    # The sampling error shrinks (a little bias stays: the edge copies' weight 10⁶ is a soft constraint against
    # 300 000 copies of weight 1)
    assert errors[1] < 0.02 and errors[1] < errors[0] / 4, errors
    size = coalitions.sum(1)  # and with the Shapley kernel's weights on every coalition, the fit is exact
    kernel = torch.tensor([1e6 if k in (0, 6) else 5 / (math.comb(6, k) * k * (6 - k)) for k in size.tolist()])
    assert_relative(weighted_least_squares(coalitions, value, kernel), exact, 1e-5)


def test_superpixels_batches_and_refusals():
    from convscope.images import load_sample

    model = ARCHITECTURES["relu_cnn"][0]()
    x = model.prepare([load_sample("chelsea"), load_sample("coffee")])
    method = Lime(model, segments=12, samples=30, alpha=1e-4, batch_size=9)
    mask = method.mask_for(x)
    maps = method(x, CLASSES)
    single = torch.cat([method(x[b:b + 1], int(CLASSES[b])) for b in range(2)])
    assert torch.allclose(maps, single, rtol=1e-5, atol=1e-7)  # batched equals image by image
    assert torch.equal(maps, Lime(model, feature_mask=mask, samples=30, alpha=1e-4)(x, CLASSES))
    assert torch.equal(maps, method.attribute(x, target=CLASSES, n_samples=30))
    assert not torch.equal(maps, method.attribute(x, target=CLASSES, seed=1))
    for b in range(2):  # one value per segment
        for segment in torch.unique(mask[b]):
            assert len(torch.unique(maps[b, 0][mask[b, 0] == segment])) == 1
    with pytest.raises(ValueError, match="samples must be"):
        Lime(model, samples=1)
    with pytest.raises(ValueError, match="distance must be"):
        Lime(model, distance="manhattan")
    with pytest.raises(ValueError, match="at least 2 segments"):
        KernelShap(model, feature_mask=torch.zeros(1, 1, 64, 64, dtype=torch.long))(x, CLASSES)
