"""Accuracy under FGSM / PGD, adversarial (PGD) training, and the robustness command."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from convscope.analysis.robustness import accuracy_under_attack, gradient_comparison, robustness_curves
from convscope.cli import main
from convscope.data.fashion_mnist import FashionMNIST, has_fashion_mnist
from convscope.models import Model, Preprocess, load_model
from convscope.models.fashion_training import adversarial_batch

needs_fashion_mnist = pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed "
                                                                         "(scripts/setup installs it)")


def _toy(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tsipras et al.'s toy problem on 4×4 grey pictures: pixel 0 is a robust feature (±0.35 from mid-grey, right
    90 % of the time), the other 15 are weak ones (±0.06 plus noise): together very predictive, but an L∞ change
    of 0.1 flips every one of them."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (count,), generator=g)
    sign = (2 * labels - 1).float()
    agree = torch.where(torch.rand(count, generator=g) < 0.9, sign, -sign)
    pixels = 0.5 + 0.06 * sign[:, None] + 0.05 * torch.randn(count, 16, generator=g)
    pixels[:, 0] = 0.5 + 0.35 * agree
    return pixels.clamp(0, 1).view(count, 1, 4, 4), labels


def _toy_model(adversarial: bool) -> Model:
    torch.manual_seed(0)
    model = Model(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)),
                  Preprocess(resize=None, crop=None, mean=(0.5,), std=(0.25,), channels=1), ["minus", "plus"], "toy")
    pixels, labels = _toy(512, seed=1)
    optimizer = torch.optim.Adam(model.net.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        inputs = (adversarial_batch(model, pixels, labels, 0.1, 5, generator) if adversarial
                  else model.preprocess.normalize(pixels))
        loss = nn.functional.cross_entropy(model.net(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.to("cpu")


def test_adversarial_training_raises_pgd_accuracy_on_a_toy_problem() -> None:
    pixels, labels = _toy(400, seed=2)
    standard, robust = _toy_model(False), _toy_model(True)
    clean = [accuracy_under_attack(m, pixels, labels, 0.0) for m in (standard, robust)]
    attacked = [accuracy_under_attack(m, pixels, labels, 0.1, "pgd", steps=10) for m in (standard, robust)]
    assert clean[0] > 0.97 and 0.8 < clean[1] < 0.95  # the robust model gives up the weak features
    assert attacked[0] < 0.2 and attacked[1] > 0.8
    # what the robust model relies on: the robust pixel's weight dominates
    weight = robust.net[1].weight.detach()
    assert (weight[1, 0] - weight[0, 0]).abs() > 3 * (weight[1, 1:] - weight[0, 1:]).abs().max()


def test_adversarial_batch_stays_in_the_ball() -> None:
    model = _toy_model(False)
    pixels, labels = _toy(64, seed=3)
    inputs = adversarial_batch(model, pixels, labels, 0.1, 3, torch.Generator().manual_seed(0))
    assert inputs.shape == pixels.shape
    changed = model.preprocess.denormalize(inputs)
    assert (changed - pixels).abs().max() <= 0.1 + 1e-5 and changed.min() >= -1e-6 and changed.max() <= 1 + 1e-6


@needs_fashion_mnist
def test_pgd_below_fgsm_below_clean_on_the_trained_cnn() -> None:
    model = load_model("fashion_cnn", device="cpu")
    pictures, labels = FashionMNIST(split="test").tensors()
    pictures, labels = pictures[:64], labels[:64]
    clean = accuracy_under_attack(model, pictures, labels, 0.0)
    with torch.no_grad():
        direct = float((model.net(model.preprocess.normalize(pictures)).argmax(1) == labels).float().mean())
    assert clean == pytest.approx(direct)
    fgsm = accuracy_under_attack(model, pictures, labels, 0.05, "fgsm")
    pgd = accuracy_under_attack(model, pictures, labels, 0.05, "pgd", steps=10)
    assert pgd <= fgsm < clean
    result = robustness_curves([model], pictures[:16], labels[:16], [0, 0.05], steps=3)
    assert result.accuracy["fashion_cnn"]["pgd"][0] == result.accuracy["fashion_cnn"]["fgsm"][0]  # ε = 0: clean
    assert "| fashion_cnn | PGD-3 |" in result.markdown() and result.picture().size[0] > 300
    picture = gradient_comparison([model], pictures[:4], labels[:4], tile_size=32)
    assert picture.size[0] > 4 * 32
    with pytest.raises(ValueError, match="unknown attack"):
        accuracy_under_attack(model, pictures, labels, 0.1, "cw")


@needs_fashion_mnist
def test_robustness_command(tmp_path, capsys) -> None:
    assert main(["train", "--train-pictures", "32", "--test-pictures", "32", "--epochs", "1", "--batch-size", "32",
                 "--channels", "4", "8", "--fc", "0", "--adversarial", "--attack-steps", "2",
                 "--out", str(tmp_path / "robust")]) == 0
    checkpoint = tmp_path / "robust" / "epoch_01.pt"
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["settings"]["adversarial_epsilon"] == 0.1
    assert load_model("fashion_cnn", weights=checkpoint).net.architecture.channels == (4, 8)
    assert main(["fool", "fashion-mnist:test", "--robustness", "--model", "fashion_cnn", "--limit", "8",
                 "--epsilons", "0", "0.05", "--steps", "2", "--compare", str(checkpoint),
                 "--out", str(tmp_path / "out")]) == 0
    names = {re.sub(r"_[0-9a-f]{6}\.", ".", p.name) for p in (tmp_path / "out").iterdir()}
    assert names >= {"robustness.csv", "robustness.md", "robustness.png", "robustness_gradients.png"}
    assert main(["fool", "fashion-mnist:test", "sample:cat", "--robustness", "--model", "fashion_cnn"]) == 2
    assert "one labelled set" in capsys.readouterr().err


@needs_fashion_mnist
def test_shipped_robust_checkpoint_resists_pgd_better() -> None:
    from convscope.models.fashion import ROBUST_WEIGHTS

    pictures, labels = FashionMNIST(split="test").tensors()
    pictures, labels = pictures[:48], labels[:48]
    standard, robust = load_model("fashion_cnn", device="cpu"), load_model("fashion_cnn", weights=ROBUST_WEIGHTS,
                                                                            device="cpu")
    attacked = [accuracy_under_attack(m, pictures, labels, 0.1, "pgd", steps=5) for m in (standard, robust)]
    assert attacked[1] > attacked[0] + 0.3
