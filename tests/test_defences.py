"""Defences against fooling: training with noise or representation matching, and test-time input defences
attacked by the attacks adapted to them (BPDA through smoothing, EOT over noise; Athalye et al. 2018)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from convscope.analysis.defences import attack, defence_table, gaussian_blur, noise, smoothing
from convscope.cli import main
from convscope.data import has_fashion_mnist
from convscope.models import Preprocess
from convscope.models.defence_training import representation_matching_loss
from convscope.models.fashion_training import TrainingSettings, train_command
from convscope.models.model import Model
from convscope.synthesis import fgsm

needs_fashion = pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed")


def tiny_model(seed: int = 0) -> Model:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    return Model(net, preprocess=Preprocess(resize=None, crop=8, mean=(0.5,), std=(0.25,), channels=1),
                 class_names=["a", "b", "c"], name="tiny")


def test_the_blur_is_scipys_gaussian_filter():
    pixels = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = 1.2
    radius = int(3 * sigma + 0.5)
    expected = np.stack([ndimage.gaussian_filter(p[0].numpy(), sigma, mode="nearest", truncate=radius / sigma)
                         for p in pixels])
    np.testing.assert_allclose(gaussian_blur(pixels, sigma)[:, 0].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_bpda_keeps_the_blur_forward_and_passes_the_gradient_unchanged():
    pixels = torch.rand(1, 1, 8, 8, requires_grad=True)
    weights = torch.rand(1, 1, 8, 8)
    defended = smoothing(1.0)(pixels, True)
    torch.testing.assert_close(defended, gaussian_blur(pixels, 1.0))
    (defended * weights).sum().backward()
    torch.testing.assert_close(pixels.grad, weights)


def test_one_step_is_fgsm_and_eot_of_a_fixed_defence_is_the_plain_attack():
    model = tiny_model()
    pixels = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1])
    ours = attack(model, pixels, labels, 0.1, steps=1)
    theirs = fgsm(model, pixels, 0.1, labels=labels.tolist(), fit=False).adversarials
    torch.testing.assert_close(ours, theirs[:, :1].to(ours.dtype))  # the library shows grey as RGB
    blur = smoothing(1.0)
    plain = attack(model, pixels, labels, 0.1, steps=4, defend=blur, generator=torch.Generator().manual_seed(3))
    eot = attack(model, pixels, labels, 0.1, steps=4, defend=blur, samples=3,
                 generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(plain, eot)  # three identical draws: the same sign of the gradient
    assert (ours - pixels).abs().max() <= 0.1 + 1e-6 and not model.net.training


def test_noise_is_redrawn_at_every_call_and_stays_in_range():
    defend = noise(0.5, torch.Generator().manual_seed(0))
    pixels = torch.full((1, 1, 8, 8), 0.5)
    first, second = defend(pixels), defend(pixels)
    assert not torch.equal(first, second) and first.min() >= 0 and first.max() <= 1


def test_representation_matching_by_hand():
    model = tiny_model()
    clean = torch.rand(3, 1, 8, 8)
    labels = torch.tensor([0, 1, 2])
    cross_entropy = nn.functional.cross_entropy(model.net(clean), labels)
    same = representation_matching_loss(model.net, clean, clean.clone(), labels, ["1"], 5.0)
    torch.testing.assert_close(same, cross_entropy)
    shifted = clean + 0.3
    a, b = model.net[:2](clean), model.net[:2](shifted)
    expected = cross_entropy + 2.0 * (b - a).square().sum() / a.square().sum()
    torch.testing.assert_close(representation_matching_loss(model.net, clean, shifted, labels, ["1"], 2.0), expected)
    assert not model.net[1]._forward_hooks


def test_settings_name_their_defence_and_refuse_what_cannot_work():
    noisy = TrainingSettings(noise_std=0.2)
    assert noisy.defence == "noise" and "--defence noise --noise 0.2" in train_command(noisy, "runs/n")
    matched = TrainingSettings(adversarial_epsilon=0.1, representation_layers=("relu2", "relu7"))
    assert matched.defence == "representation"
    assert "--defence-layers relu2 relu7" in train_command(matched, "runs/r")
    with pytest.raises(ValueError, match="adversarial_epsilon > 0"):
        TrainingSettings(representation_layers=("relu2",))
    with pytest.raises(ValueError, match="noise_std"):
        TrainingSettings(noise_std=2.0)


def test_the_table_marks_adaptive_attacks_and_pools_seeds():
    models = {"tiny": [tiny_model(0), tiny_model(1)]}
    pixels = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    table = defence_table(models, pixels, labels, [0.0, 0.1], smooth_input=1.0, noise_input=0.2, steps=3,
                          samples=2)
    attacks = [(row.defence, row.attack, row.adaptive) for row in table.rows]
    assert ("input smoothing σ=1", "PGD-3 BPDA", True) in attacks
    assert ("input noise σ=0.2", "PGD-3 EOT×2", True) in attacks
    assert all(len(row.accuracy) == 2 for row in table.rows)  # two seeds each
    assert "±" in table.markdown() and len(table.verdicts()) == 2
    with pytest.raises(ValueError, match="ε values"):
        defence_table(models, pixels, labels, [2.0])


@needs_fashion
def test_the_command_writes_the_table(tmp_path, capsys):
    code = main(["defences", "fashion_cnn", "fashion_linear", "--limit", "16", "--steps", "2", "--epsilons", "0",
                 "0.1", "--smooth-input", "1", "--samples", "2", "--out", str(tmp_path), "-q"])
    assert code == 0
    assert sorted(p.suffix for p in tmp_path.glob("defences_*")) == [".csv", ".md", ".png"]
    assert "fashion_linear (shipped)" in capsys.readouterr().out
    assert main(["defences", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


@pytest.mark.skipif(not has_fashion_mnist(), reason="needs Fashion-MNIST")
def test_the_shipped_defence_models_are_pooled_by_defence_and_only_adversarial_training_is_robust():
    from convscope.analysis.defence_runs import group_runs
    from convscope.analysis.defences import labelled_pixels
    from convscope.models.defence_weights import SHIPPED_DEFENCES

    groups = group_runs([SHIPPED_DEFENCES], "cpu")
    assert [len(models) for models in groups.values()] == [3, 3, 3, 3]
    names = list(groups)
    assert names[0].startswith("plain") and names[2].startswith("adversarial ε=0.1")
    assert all(name.endswith("(shipped)") for name in names)
    pixels, labels = labelled_pixels("fashion-mnist:test", 200, groups[names[0]][0])
    table = defence_table({n: groups[n] for n in (names[0], names[2])}, pixels, labels, [0.0, 0.1], steps=5)
    pgd = {row.model: row.mean() for row in table.rows if row.attack == "PGD-5"}
    assert min(pgd[names[0]][0], pgd[names[2]][0]) > 0.6  # trained: clean accuracy well above chance
    assert pgd[names[2]][1] > pgd[names[0]][1] + 0.05  # robust where the plain models are not
