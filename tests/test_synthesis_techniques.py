"""The techniques on the embedded model with small budgets, facets' clustering, and the command line."""

from __future__ import annotations

import pytest
import torch

from convscope.cli import main
from convscope.synthesis import class_model, crop_pool, dream, invert, multifaceted, visualise_features
from convscope.synthesis.facets import kmeans


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_class_model_raises_the_target_scores(lite0):
    result = class_model(lite0, ["goldfish", 130], size=64, steps=10, recipe="fourier", generator=seeded(),
                         progress=False)
    assert result.classes == [1, 130]
    assert (result.losses[-1] < result.losses[0] - 1).all()           # losses are the negated scores
    assert "goldfish" in result.lines()[0] and result.picture().size[0] > 0


def test_class_model_defaults_reach_ninety_nine_percent(lite0):
    result = class_model(lite0, ["tabby", "goldfish"], generator=seeded(), progress=False)
    assert (result.probabilities >= 0.99).all()


def test_feature_visualisation_excites_its_channels(lite0):
    result = visualise_features(lite0, "blocks.2", [3, 5], size=48, steps=8, generator=seeded(), progress=False)
    grey = visualise_features(lite0, "blocks.2", [3, 5], size=48, steps=1, generator=seeded(), progress=False)
    assert (result.activations > grey.activations).all()


def test_inversion_reduces_the_feature_error_per_layer(lite0, chelsea):
    short = invert(lite0, chelsea, ["bn1", "blocks.2"], size=48, steps=2, generator=seeded(), progress=False)
    longer = invert(lite0, chelsea, ["bn1", "blocks.2"], size=48, steps=25, generator=seeded(), progress=False)
    assert (longer.feature_errors < short.feature_errors).all()
    assert longer.images.shape == (2, 3, 48, 48) and len(longer.lines()) == 2
    with pytest.raises(ValueError, match="unknown layer"):
        invert(lite0, chelsea, ["block.2"], size=32, steps=1)


def test_dream_amplifies_the_layer(lite0, chelsea):
    result = dream(lite0, chelsea, "blocks.2", size=48, octaves=2, steps=3, generator=seeded(), progress=False)
    assert result.image.shape == (3, 48, 72) and all(gain > 1 for gain in result.gains)
    assert not torch.equal(result.image, result.original)


def test_kmeans_finds_separated_clusters():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.2]])
    labels = kmeans(points, 2, generator=seeded())
    assert labels[:3].unique().numel() == 1 and labels[3:].unique().numel() == 1 and labels[0] != labels[3]


def test_facets_start_from_cluster_means(lite0, chelsea):
    pool = crop_pool([chelsea], 32, scales=(1.0, 0.5))
    # 300×451 photo: 2 crops of side 300 (stride 150) + 3 × 5 of side 150 (stride 75), and their mirror images
    assert pool.shape == (2 * (2 + 15), 3, 32, 32)
    result = multifaceted(lite0, "blocks.3", 4, pool, facets=2, top=6, steps=3, generator=seeded(),
                          progress=False)
    members = [result.top_images[result.assignments == k].mean(0) for k in range(2)]
    assert torch.allclose(result.starts, torch.stack(members))
    assert (result.top_scores[:-1] >= result.top_scores[1:]).all()


def test_command_line_reports_bad_input_in_one_line(capsys):
    assert main(["classviz", "--target", "not-a-class", "--steps", "1", "--size", "32"]) == 2
    assert "not-a-class" in capsys.readouterr().err
    assert main(["fool", "sample:chelsea", "--method", "targeted"]) == 2
    assert "needs --target" in capsys.readouterr().err


def test_command_line_efros_leung_writes_a_picture(tmp_path, capsys):
    code = main(["texture", "sample:brick", "--method", "efros-leung", "--source-size", "24", "--size", "16",
                 "--window", "5", "--out", str(tmp_path)])
    assert code == 0 and len(list(tmp_path.glob("texture_brick_efros-leung_*.png"))) == 2
    assert len(list(tmp_path.glob("texture_brick_efros-leung_glcm_*.png"))) == 1
    assert "mean window error" in capsys.readouterr().out


def test_classviz_takes_the_lectures_objective_and_its_lambda(tmp_path, capsys, monkeypatch):
    import convscope.synthesis as synthesis

    seen = {}
    real = synthesis.class_model

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(synthesis, "class_model", spy)
    code = main(["classviz", "--targets", "goldfish", "--objective", "score", "--l2", "0.001", "--steps", "2",
                 "--size", "32", "-q", "--out", str(tmp_path)])
    assert code == 0 and seen["objective"] == "score" and seen["l2_weight"] == 0.001
    assert len(list(tmp_path.glob("classviz_goldfish_fourier_score_*.png"))) == 1
    assert main(["classviz", "--targets", "goldfish", "--l2", "-1", "--out", str(tmp_path)]) == 2
    assert "--l2 is a weight ≥ 0" in capsys.readouterr().err
