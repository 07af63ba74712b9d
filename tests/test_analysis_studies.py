"""The studies end to end on the tiny net: files, shapes and the qualitative findings they must show."""

from __future__ import annotations

import pytest
import torch

from convscope.analysis.faithfulness import faithfulness_study
from convscope.analysis.invariance import invariance_curves
from convscope.analysis.pasted import pasted_objects
from convscope.analysis.sanity import sanity_checks


def test_invariance_curves_start_at_zero_distance(tiny_model):
    pictures = [torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    curves = invariance_curves(tiny_model, pictures, "rotate", layers=["conv", "fc"],
                               amounts=[0.0, 90.0, 180.0], names=["a", "b"])
    assert curves.distances["conv"].shape == (2, 3)
    assert curves.distances["conv"][:, 0].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert (curves.distances["conv"][:, 1:] > 0).all()
    assert curves.probabilities.shape == (2, 3)
    assert curves.picture().array.ndim == 3
    with pytest.raises(ValueError, match="translate"):
        invariance_curves(tiny_model, pictures, "flip")


def test_sanity_checks_on_the_tiny_net(tiny_model):
    inputs = tiny_model.prepare([torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(3))])
    result = sanity_checks(tiny_model, inputs, ["saliency", "guided_backprop"], target=0)
    assert result.stages == ["fc", "conv"]
    assert result.maps["saliency"].shape == (3, 1, 8, 8)
    for method in result.methods:
        assert result.spearman[method].shape == (2,)
    # randomising the first convolution changes every gradient map
    assert result.spearman["saliency"][-1] < 0.99
    assert len(result.rows()) == 4 and "guided_backprop" in "\n".join(result.summary())


def test_faithfulness_study_rows(tiny_model):
    inputs = tiny_model.prepare([torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2)])
    study = faithfulness_study(tiny_model, inputs, ["saliency", "grad_cam"], steps=4)
    rows = {r["method"]: r for r in study.rows()}
    assert set(rows) == {"saliency", "grad_cam"} and rows["saliency"]["images"] == 2
    assert 0 <= rows["saliency"]["deletion_auc"] <= 1
    assert study.picture().array.ndim == 3


def test_pasted_objects_boxes_hold_the_object():
    pasted = pasted_objects(size=64, object_size=24, per_pair=1)
    assert pasted.pictures.shape == (9, 3, 64, 64)
    top, left, bottom, right = pasted.boxes[0]
    assert (bottom - top, right - left) == (24, 24)
    assert pasted.object_mask()[0].sum().item() == 24 * 24
    assert pasted.names[0] == "chelsea on brick"


def test_probes_separate_what_is_separable():
    from convscope.analysis.probes import softmax_probe, svm_probe

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    features = torch.randn(200, 6, generator=generator) * 0.1
    features[torch.arange(200), labels] += 3  # class k lives along axis k
    for probe in (softmax_probe, svm_probe):
        assert probe(features[:150], labels[:150], features[150:], labels[150:]) == 1.0
    noise = torch.randn(200, 6, generator=generator)
    assert softmax_probe(noise[:150], labels[:150], noise[150:], labels[150:]) < 0.6


def test_linear_probes_on_a_tiny_labelled_set(tiny_model, tmp_path):
    from convscope.analysis.probes import linear_probes, split_pictures
    from convscope.data.tensors import TensorPictures

    generator = torch.Generator().manual_seed(1)
    bright = torch.rand(40, 3, 8, 8, generator=generator) * 0.3 + 0.7
    dark = torch.rand(40, 3, 8, 8, generator=generator) * 0.3
    pictures = TensorPictures(torch.cat([bright, dark]), [0] * 40 + [1] * 40, class_names=["bright", "dark"])
    train, test = split_pictures(pictures, 0.25)
    assert len(train) == 60 and len(test) == 20
    result = linear_probes(tiny_model, train, test, ["relu", "fc"], work=tmp_path, progress=False)
    assert result.layers == ["pixels", "relu", "fc"]
    assert result.accuracy["softmax"]["fc"] == 1.0 and result.accuracy["svm"]["relu"] == 1.0
    assert result.dimensions == {"pixels": 192, "relu": 2, "fc": 3}
    assert "softmax" in result.lines()[0]


def test_feature_evolution_over_checkpoints(tmp_path):
    from convscope.analysis.evolution import checkpoint_files, feature_evolution
    from convscope.data.tensors import TensorPictures
    from convscope.models.fashion import untrained_fashion_model

    for epoch in range(2):
        torch.save({"state_dict": untrained_fashion_model(epoch).net.state_dict()}, tmp_path / f"epoch_{epoch:02d}.pt")
    files = checkpoint_files(tmp_path)
    pictures = TensorPictures(torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    evolution = feature_evolution(files, pictures, ["relu1", "relu3"], channels=[0, 5], work=tmp_path / "scans",
                                  device="cpu")
    assert evolution.checkpoints == ["epoch 00", "epoch 01"]
    first = evolution.layers[0]
    assert first.layer == "relu1" and first.channels == [0, 5]
    assert first.patches.shape[:2] == (2, 2) and first.values.shape == (2, 2)
    assert not torch.equal(first.values[:, 0], first.values[:, 1])  # different weights, different maxima
    assert evolution.picture().array.ndim == 3
    with pytest.raises(ValueError, match="convscope train"):
        checkpoint_files(tmp_path / "missing")


def test_sanity_checks_can_skip_stages(tiny_model):
    from torch import nn

    deeper = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = type(tiny_model)(deeper, preprocess=tiny_model.preprocess, class_names=tiny_model.class_names)
    inputs = model.prepare([torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(5))])
    every = sanity_checks(model, inputs, ["saliency"], target=0)
    skipped = sanity_checks(model, inputs, ["saliency"], target=0, evaluate_every=2)
    assert every.stages == ["6", "2", "0"] and skipped.stages == ["6", "0"]
    torch.testing.assert_close(skipped.maps["saliency"][-1], every.maps["saliency"][-1])
