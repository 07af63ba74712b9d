"""Adversarial images: FGSM against a closed form and autograd, PGD's budgets, reporting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.models import Model, Preprocess
from convscope.synthesis import fgsm, fool, pgd


def linear_model() -> Model:
    """scores = W·x on 2×2 RGB pictures: two classes with fixed weights."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, -1.0, 2.0, 0.0] * 3, [0.0, 1.0, 1.0, -2.0] * 3]))
    identity = Preprocess(resize=None, crop=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return Model(net.eval(), preprocess=identity, class_names=["first", "second"])


def test_fgsm_on_a_linear_model_moves_along_the_sign_of_the_weight_difference():
    model = linear_model()
    picture = torch.full((3, 2, 2), 0.5)
    result = fgsm(model, picture, 0.1, labels=0)
    # ∇ₓ CE(x, 0) = p₁ (w₁ − w₀) with p₁ > 0, so the step is ε·sign(w₁ − w₀)
    weights = model.net[1].weight
    expected = (picture + 0.1 * torch.sign(weights[1] - weights[0]).view(3, 2, 2)).clamp(0, 1)
    assert torch.allclose(result.adversarials[0], expected)
    assert result.linf[0] == pytest.approx(0.1) and result.labels.tolist() == [0]


def test_fgsm_matches_an_autograd_computation_on_the_tiny_model(tiny_model):
    pictures = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = fgsm(tiny_model, pictures, 0.05, labels=[2, 0], fit=False)
    x = pictures.clone().requires_grad_(True)
    F.cross_entropy(tiny_model.net(x), torch.tensor([2, 0]), reduction="sum").backward()
    expected = (pictures + 0.05 * x.grad.sign()).clamp(0, 1)
    assert torch.allclose(result.adversarials, expected)


def test_pgd_keeps_to_its_budget_in_both_norms(tiny_model):
    pictures = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    linf = pgd(tiny_model, pictures, 0.03, steps=5, fit=False, progress=False)
    assert (linf.linf <= 0.03 + 1e-6).all()
    l2 = pgd(tiny_model, pictures, 0.2, steps=5, norm="l2", fit=False, progress=False)
    assert (l2.l2 <= 0.2 + 1e-5).all()
    for result in (linf, l2):
        assert result.adversarials.min() >= 0 and result.adversarials.max() <= 1
        assert torch.equal(result.success, result.predictions != result.labels)


def test_targeted_attack_reports_target_probability_and_pictures(tiny_model):
    pictures = torch.full((1, 3, 8, 8), 0.6)
    result = fool(tiny_model, pictures, "dark", epsilon=0.5, steps=40, fit=False, progress=False)
    assert result.targets.tolist() == [1]
    assert result.success.tolist() == [True]
    assert result.target_probability()[0] > result.before.softmax(1)[0, 1]
    assert "target dark" in "\n".join(result.lines())
    assert result.picture().size[0] > 0 and result.picture(magnify=10).size[1] > 0


def test_bad_attack_arguments(tiny_model):
    pictures = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="epsilon"):
        pgd(tiny_model, pictures, 0.0, fit=False)
    with pytest.raises(ValueError, match="norm"):
        pgd(tiny_model, pictures, 0.1, norm="l1", fit=False)
    with pytest.raises(ValueError, match="unknown class|did you mean"):
        fool(tiny_model, pictures, "zebra", fit=False)
    with pytest.raises(ValueError, match="one for all or one each"):
        fgsm(tiny_model, torch.rand(3, 3, 8, 8), labels=[0, 1], fit=False)
