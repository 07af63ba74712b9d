"""The methods × metrics report: ranks follow each metric's direction, intervals hold the mean, the CLI writes it."""

from __future__ import annotations

import argparse

import pytest
import torch

from convscope.analysis.metrics.report import EvaluationReport, bootstrap, evaluate_methods, metric_names


def _report(values):
    metrics = list(next(iter(values.values())))
    return EvaluationReport("tiny", list(values), metrics, values, 3, {})


def test_ranks_follow_each_metrics_direction():
    report = _report({"a": {"sparseness": torch.tensor([0.9, 0.8, 0.7]), "complexity": torch.tensor([5.0, 5, 5])},
                      "b": {"sparseness": torch.tensor([0.1, 0.2, 0.3]), "complexity": torch.tensor([1.0, 1, 1])}})
    ranks = report.ranks()
    assert ranks["a"]["sparseness"] == 1 and ranks["b"]["complexity"] == 1  # higher / lower is better
    assert [m for m, _ in report.overall()] in (["a", "b"], ["b", "a"])
    assert "sparseness ↑" in report.markdown() and "complexity ↓" in report.markdown()


def test_the_verdict_names_a_method_that_ignores_the_class():
    report = _report({"blind": {"random_logit": torch.tensor([0.95, 0.9, 0.97])},
                      "good": {"random_logit": torch.tensor([0.1, 0.2, 0.0])}})
    verdict = " ".join(report.verdict())
    assert "blind hardly depends on the class" in verdict and "good changes when another class" in verdict


def test_the_verdict_names_no_best_where_the_methods_tie():
    zero = torch.zeros(3)
    report = _report({"a": {"monotonicity": zero, "sparseness": torch.tensor([0.9, 0.8, 0.7])},
                      "b": {"monotonicity": zero, "sparseness": torch.tensor([0.9, 0.8, 0.7])},
                      "c": {"monotonicity": zero, "sparseness": torch.tensor([0.1, 0.2, 0.3])}})
    verdict = report.verdict()
    assert "faithfulness: no method is ahead (all tie)." in verdict
    assert "complexity: a and b tie for best." in verdict
    assert not any(line.startswith("faithfulness: best") for line in verdict)


def test_bootstrap_interval_holds_the_mean_and_ignores_nan():
    values = torch.tensor([0.0, 1.0, 2.0, 3.0, float("nan")])
    low, high = bootstrap(values)
    assert low <= 1.5 <= high and 0 <= low and high <= 3
    assert bootstrap(torch.tensor([2.0, 2.0])) == (2.0, 2.0)
    low, high = bootstrap(torch.tensor([0.1, 0.2, 1e308, 0.3], dtype=torch.float64))  # means overflow to inf
    assert low < 1 and high == float("inf")


def test_unknown_metric_is_refused_with_the_list():
    with pytest.raises(ValueError, match="sparseness"):
        metric_names(["sparsenes"])


def test_evaluate_methods_on_a_tiny_model_skips_localisation_without_masks(tiny_model):
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    report = evaluate_methods(tiny_model, x, ["saliency", "grad_cam"], ["sparseness", "pointing_game",
                                                                         "random_logit", "pixel_flipping"])
    assert report.metrics == ["sparseness", "random_logit", "pixel_flipping"]
    assert "pointing_game" in report.skipped
    assert all(v.shape == (3,) for m in report.values.values() for v in m.values())
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    with_masks = evaluate_methods(tiny_model, x, ["saliency"], ["pointing_game", "model_randomisation"], masks=masks)
    assert with_masks.metrics == ["pointing_game", "model_randomisation"]
    assert tiny_model.net.training is False and all(p.requires_grad for p in tiny_model.net.parameters())


def test_check_metrics_writes_the_report(tiny_model, monkeypatch, tmp_path):
    from convscope.cli import analysis

    monkeypatch.setattr(analysis, "model_from", lambda args: tiny_model)
    parser = argparse.ArgumentParser()
    analysis.register(parser.add_subparsers())
    picture = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(picture)
    args = parser.parse_args(["check", str(picture), str(picture), "--metrics", "sparseness", "complexity",
                              "--methods", "saliency", "grad_cam", "--out", str(tmp_path / "out")])
    args.run(args)
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"metrics.md", "metrics.csv", "metrics.png", "metrics.json"}
    assert "## Verdict" in (tmp_path / "out" / "metrics.md").read_text()


def test_the_verdict_leaves_undecided_a_method_whose_interval_holds_the_threshold():
    report = _report({"torn": {"model_randomisation": torch.tensor([0.1, 0.9, 0.2, 0.8])}})
    verdict = " ".join(report.verdict())
    assert "torn: undecided on the classifier's weights" in verdict


def test_every_registered_metric_runs_on_a_tiny_model(tiny_model):
    from convscope.analysis.metrics.registry import METRICS

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:6, 1:5] = True
    report = evaluate_methods(tiny_model, x, ["saliency"], list(METRICS), masks=masks)
    assert report.metrics == [m for m in METRICS if m != "data_randomisation"]
    assert list(report.skipped) == ["data_randomisation"]  # no random-label twin of the tiny network
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in report.values["saliency"].values())
    assert len(report.rows()) == len(METRICS) - 1


def test_data_randomisation_compares_with_the_shipped_random_label_twin_of_fashion_cnn():
    from convscope.models.fashion import fashion_model

    model = fashion_model()
    x = model.preprocess.normalize(torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    report = evaluate_methods(model, x, ["saliency"], ["data_randomisation"])
    similarity = report.values["saliency"]["data_randomisation"]
    assert similarity.shape == (3,) and (similarity.abs() <= 1).all() and (similarity < 0.99).all()
    assert any("trained on random labels" in line or "learnt from its labels" in line for line in report.verdict())


def test_check_refuses_pictures_without_metrics_and_unknown_metrics_before_writing(monkeypatch, tmp_path):
    from convscope.cli import analysis

    monkeypatch.setattr(analysis, "model_from", lambda args: pytest.fail("no model is loaded for a refusal"))
    parser = argparse.ArgumentParser()
    analysis.register(parser.add_subparsers())
    for argv, message in ((["check", "p.png"], "pictures are evaluated with --metrics"),
                          (["check", "--metrics", "bogus"], "unknown metric")):
        args = parser.parse_args([*argv, "--out", str(tmp_path / "out")])
        with pytest.raises(ValueError, match=message):
            args.run(args)
    assert not (tmp_path / "out").exists()
