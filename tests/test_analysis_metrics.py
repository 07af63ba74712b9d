"""Analysis building blocks checked against scipy / scikit-image and hand-made cases."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from convscope.analysis.faithfulness import deletion_insertion, pointing_game
from convscope.analysis.randomisation import cascading_randomisation, stages
from convscope.analysis.similarity import spearman, ssim
from convscope.analysis.transforms import transform_batch


def test_spearman_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 40), generator=generator).float()  # many ties, as in ReLU'd maps
    b = a + torch.randn(3, 40, generator=generator)
    ours = spearman(a, b)
    for row in range(3):
        assert ours[row].item() == pytest.approx(spearmanr(a[row].numpy(), b[row].numpy()).statistic, abs=1e-6)
    assert spearman(a, a).tolist() == pytest.approx([1.0] * 3)
    assert spearman(a, -a).tolist() == pytest.approx([-1.0] * 3)


def test_ssim_matches_scikit_image():
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(2, 32, 32, generator=generator)
    b = (a + 0.2 * torch.rand(2, 32, 32, generator=generator)).clamp(0, 1)
    ours = ssim(a, b)
    for row in range(2):
        theirs = structural_similarity(a[row].numpy().astype(np.float64), b[row].numpy().astype(np.float64),
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
        assert ours[row].item() == pytest.approx(theirs, abs=1e-3)
    assert ssim(a, a).tolist() == pytest.approx([1.0, 1.0])


def test_transforms_move_content_as_named():
    picture = torch.zeros(1, 1, 9, 9)
    picture[0, 0, 4, 4] = 1
    down = transform_batch(picture, "translate", torch.tensor([2.0]), fill=0.0)[0, 0, 0]
    assert down.argmax().item() == 6 * 9 + 4
    same = transform_batch(picture, "rotate", torch.tensor([0.0, 360.0]), fill=0.0)[0]
    torch.testing.assert_close(same[0], picture[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(same[1], picture[0], atol=1e-4, rtol=0)
    quarter = torch.zeros(1, 1, 9, 9)
    quarter[0, 0, 4, 7] = 1
    turned = transform_batch(quarter, "rotate", torch.tensor([90.0]), fill=0.0)[0, 0, 0]
    assert turned.argmax().item() in (1 * 9 + 4, 7 * 9 + 4)  # the right-hand dot ends up above or below centre
    grey = transform_batch(picture, "scale", torch.tensor([0.5]), fill=0.5)[0, 0, 0]
    assert grey[0, 0].item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="translate"):
        transform_batch(picture, "shear", torch.tensor([1.0]))


def test_deletion_of_the_important_pixels_drops_the_score(tiny_model):
    # TinyNet's "bright" class scores the image's brightness; a bright square on black is all that matters
    image = torch.zeros(1, 3, 8, 8)
    image[..., 2:6, 2:6] = 1
    inputs = tiny_model.prepare(list(image))
    good = image[:, 0].clone()  # the square itself
    bad = 1 - good
    classes = torch.tensor([0])
    faithful = deletion_insertion(tiny_model, inputs, good, classes, steps=8)
    unfaithful = deletion_insertion(tiny_model, inputs, bad, classes, steps=8)
    assert faithful.fractions.tolist() == pytest.approx([i / 8 for i in range(9)])
    assert faithful.deletion_auc.item() < unfaithful.deletion_auc.item()
    assert faithful.deletion[0, 0].item() == pytest.approx(unfaithful.deletion[0, 0].item())
    assert faithful.deletion[0, -1].item() == pytest.approx(unfaithful.deletion[0, -1].item())


def test_pointing_game():
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0] = 1
    maps[1, 3, 3] = 1
    hits = pointing_game(maps, [(0, 0, 2, 2), (0, 0, 2, 2)], size=(4, 4), tolerance=0)
    assert hits.tolist() == [True, False]
    with pytest.raises(ValueError, match="boxes"):
        pointing_game(maps, [(0, 0, 1, 1)], size=(4, 4))


def test_cascading_randomisation_leaves_the_original_untouched(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.net.state_dict().items()}
    assert stages(tiny_model.net) == ["conv", "fc"]
    seen = []
    for stage, randomised in cascading_randomisation(tiny_model, seed=0):
        seen.append(stage)
        assert randomised.net is not tiny_model.net
        changed = [n for n, p in randomised.net.named_parameters() if not torch.equal(p, before[n])]
        assert changed, stage
    assert seen == ["fc", "conv"]
    for key, value in tiny_model.net.state_dict().items():
        assert torch.equal(value, before[key])


def test_pictures_per_pass_keeps_cpu_passes_small_and_checks_batch_size():
    from convscope.analysis.passes import pictures_per_pass

    cpu = torch.device("cpu")
    assert pictures_per_pass(None, (1, 3, 224, 224), cpu) == 4
    assert pictures_per_pass(None, (1, 1, 28, 28), cpu) == 64
    assert pictures_per_pass(None, (1, 3, 1024, 1024), cpu) == 1
    assert pictures_per_pass(7, (1, 3, 224, 224), cpu) == 7
    with pytest.raises(ValueError, match="positive integer"):
        pictures_per_pass(0, (1, 3, 8, 8), cpu)


def test_deletion_curves_do_not_depend_on_the_pictures_per_pass(tiny_model):
    g = torch.Generator().manual_seed(0)
    inputs = torch.rand(2, 3, 8, 8, generator=g)
    maps = torch.rand(2, 8, 8, generator=g)
    one = deletion_insertion(tiny_model, inputs, maps, torch.tensor([0, 2]), steps=6, batch_size=1)
    many = deletion_insertion(tiny_model, inputs, maps, torch.tensor([0, 2]), steps=6)
    torch.testing.assert_close(one.deletion, many.deletion)
    torch.testing.assert_close(one.insertion, many.insertion)


def test_heatmaps_explained_a_few_pictures_at_a_time_equal_one_pass(tiny_model, monkeypatch):
    import convscope.analysis.passes as passes
    from convscope.analysis.explainers import build, fixed_target, heatmaps

    inputs = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target, _ = fixed_target(tiny_model, inputs)
    whole = heatmaps(build("grad_cam", tiny_model), inputs, target)
    monkeypatch.setattr(passes, "CPU_PIXELS_PER_PASS", 2 * 64)  # two 8×8 pictures per pass
    calls = []
    method = build("grad_cam", tiny_model)
    original = type(method).__call__
    monkeypatch.setattr(type(method), "__call__", lambda self, x, t: calls.append(len(x)) or original(self, x, t))
    torch.testing.assert_close(heatmaps(method, inputs, target), whole)
    assert calls == [2, 2, 1]


def test_check_runs_the_quick_study_unless_asked_for_the_full_one(monkeypatch, tmp_path):
    import convscope.analysis.checks as checks
    from convscope.cli import analysis

    seen = []
    monkeypatch.setattr(checks, "run_checks", lambda model, out, **kw: seen.append(kw))
    monkeypatch.setattr(analysis, "model_from", lambda args: None)
    parser = argparse.ArgumentParser()
    analysis.register(parser.add_subparsers())
    for argv in (["check"], ["check", "--full"], ["check", "--steps", "3", "--methods", "saliency"]):
        args = parser.parse_args([*argv, "--out", str(tmp_path)])
        args.run(args)
    quick, full, chosen = seen
    assert quick["methods"] == checks.DEMO_CHECK["methods"]
    assert quick["cascade_every"] == 3 and quick["steps"] == 10 and quick["pasted_per_pair"] == 1
    assert full["methods"] is None and full["steps"] == 25 and "cascade_every" not in full
    assert chosen["methods"] == ["saliency"] and chosen["steps"] == 3
