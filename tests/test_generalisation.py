"""Feature generalisation with N pictures per class: draws, mean ± std, random weights (Zeiler & Fergus §5.2)."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import nn

from convscope.analysis.generalisation import (
    draw_per_class,
    generalisation_from_features,
    generalisation_study,
    random_weights,
)
from convscope.analysis.probes import softmax_probe, svm_probe
from convscope.data.fashion_mnist import has_fashion_mnist
from convscope.data.opening import open_dataset
from convscope.data.pictures import FirstPictures
from convscope.models import Model, Preprocess, load_model


def _features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    train_labels, test_labels = torch.arange(3).repeat(20), torch.arange(3).repeat(10)
    centres = 3 * torch.eye(3, 8)
    train = centres[train_labels] + torch.randn(60, 8, generator=g)
    test = centres[test_labels] + torch.randn(30, 8, generator=g)
    return train, train_labels, test, test_labels


def test_draw_per_class() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    chosen = draw_per_class(labels, 2, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[chosen]).tolist() == [2, 2, 2]
    assert len(set(chosen.tolist())) == 6
    assert chosen.equal(draw_per_class(labels, 2, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="class 1 has 3 training pictures"):
        draw_per_class(labels, 4, torch.Generator().manual_seed(0))


def test_mean_and_std_over_draws_against_direct_computation() -> None:
    train, train_labels, test, test_labels = _features()
    noise = torch.randn(60, 8, generator=torch.Generator().manual_seed(1))
    features = {"informative": (train, test), "noise": (noise, noise[:30]), "copy": (train, test)}
    result = generalisation_from_features(features, train_labels, test_labels, per_class=(2, 10), draws=4, seed=7)
    for n in (2, 10):
        direct = [softmax_probe(train[i], train_labels[i], test, test_labels)
                  for i in (draw_per_class(train_labels, n, torch.Generator().manual_seed(7 + d)) for d in range(4))]
        assert result.accuracy["informative"][n] == pytest.approx(direct)
        assert result.accuracy["copy"][n] == result.accuracy["informative"][n]  # the same draws for every entry
        row = next(r for r in result.rows() if r["features"] == "informative" and r["per_class"] == n)
        assert row["mean_accuracy"] == pytest.approx(statistics.mean(direct))
        assert row["std_accuracy"] == pytest.approx(statistics.stdev(direct))
    assert statistics.mean(result.accuracy["informative"][10]) > 0.9
    assert statistics.mean(result.accuracy["noise"][10]) < 0.7
    table = result.markdown()
    assert table.splitlines()[0] == "| features (softmax) | 2/class | 10/class |" and " ± " in table
    assert result.picture().size[0] > 300


def test_svm_classifier_and_validation() -> None:
    train, train_labels, test, test_labels = _features()
    result = generalisation_from_features({"f": (train, test)}, train_labels, test_labels, per_class=(5,), draws=2,
                                          classifier="svm")
    chosen = draw_per_class(train_labels, 5, torch.Generator().manual_seed(0))
    assert result.accuracy["f"][5][0] == pytest.approx(svm_probe(train[chosen], train_labels[chosen], test,
                                                                 test_labels))
    with pytest.raises(ValueError, match="unknown classifier"):
        generalisation_from_features({"f": (train, test)}, train_labels, test_labels, classifier="knn")
    with pytest.raises(ValueError, match="labelled"):
        generalisation_from_features({"f": (train, test)}, train_labels - 1, test_labels)


def test_random_weights_copy() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with torch.no_grad():
        net[1].running_mean.fill_(3.0)
    model = Model(net.eval(), Preprocess(resize=None, crop=8), ["a", "b"], "tiny")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fresh = random_weights(model, seed=0)
    assert all(before[k].equal(v) for k, v in net.state_dict().items())  # the original is untouched
    assert fresh.name == "tiny (random weights)" and not fresh.net[0].weight.equal(net[0].weight)
    assert fresh.net[1].running_mean.eq(0).all() and fresh.net[1].running_var.eq(1).all()
    again = random_weights(model, seed=0)
    assert all(v.equal(again.net.state_dict()[k]) for k, v in fresh.net.state_dict().items())  # seeded


@pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed (scripts/setup installs it)")
def test_study_trained_beats_random_weights(tmp_path) -> None:
    model = load_model("fashion_cnn")
    train = FirstPictures(open_dataset("fashion-mnist:train"), 200)
    test = FirstPictures(open_dataset("fashion-mnist:test"), 100)
    result = generalisation_study([model, random_weights(model)], train, test, ["relu7"], per_class=(5,), draws=2,
                                  work=tmp_path, progress=False)
    trained, untrained = result.accuracy["fashion_cnn · relu7"][5], result.accuracy[
        "fashion_cnn (random weights) · relu7"][5]
    assert len(trained) == 2 and statistics.mean(trained) > statistics.mean(untrained) + 0.1


@pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed (scripts/setup installs it)")
def test_probe_repeats_mean_and_std(tmp_path) -> None:
    from convscope.analysis.probes import linear_probes
    from convscope.scan import Scan

    model = load_model("fashion_cnn")
    train = FirstPictures(open_dataset("fashion-mnist:train"), 120)
    test = FirstPictures(open_dataset("fashion-mnist:test"), 60)
    result = linear_probes(model, train, test, ["relu7"], classifiers=["softmax"], pixels=False, work=tmp_path,
                           repeats=3, share=0.5, seed=4, progress=False)
    scan = Scan(model, ["relu7"], k=1)
    fitted, tested = (scan.run(p, tmp_path / name, batch_size=256, progress=False)
                      for p, name in ((train, "train"), (test, "test")))
    direct = []
    for r in range(3):
        chosen = torch.randperm(120, generator=torch.Generator().manual_seed(4 + r))[:60]
        direct.append(softmax_probe(fitted.features("relu7")[chosen], fitted.labels[chosen],
                                    tested.features("relu7"), tested.labels))
    assert result.accuracy["softmax"]["relu7"] == pytest.approx(statistics.mean(direct))
    assert result.spread["softmax"]["relu7"] == pytest.approx(statistics.stdev(direct))
    assert result.rows()[0]["softmax_std"] == pytest.approx(statistics.stdev(direct))
    assert " ± " in result.lines()[1] and "3 repeats" in result.lines()[0]
    with pytest.raises(ValueError, match="repeats"):
        linear_probes(model, train, test, ["relu7"], repeats=0)


def test_generalise_command_on_a_labelled_folder(tmp_path, capsys) -> None:
    from PIL import Image

    from convscope.cli import main

    g = torch.Generator().manual_seed(0)
    for n in range(24):
        kind = ["bars", "blocks", "rings"][n % 3]
        picture = torch.rand(28, 28, generator=g) * 0.3
        if kind == "bars":
            picture[:, ::4] = 1
        elif kind == "blocks":
            picture[8:20, 8:20] = 1
        else:
            picture[4:24, 4:24] = 1
            picture[8:20, 8:20] = 0
        (tmp_path / "set" / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray((picture * 255).byte().numpy()).save(tmp_path / "set" / kind / f"{n}.png")
    assert main(["generalise", str(tmp_path / "set"), "--model", "fashion_cnn", "--layers", "relu7",
                 "--per-class", "1", "3", "--draws", "2", "--out", str(tmp_path / "out")]) == 0
    [table] = [p.read_text() for p in (tmp_path / "out").glob("generalisation_*.md")]
    assert "| fashion_cnn · relu7 |" in table and "| fashion_cnn (random weights) · relu7 |" in table
    assert len(list((tmp_path / "out").glob("generalisation_*.png"))) == 1
    assert main(["generalise", str(tmp_path / "set"), "--model", "fashion_cnn", "--layers", "relu7",
                 "--per-class", "50", "--out", str(tmp_path / "out2")]) == 2
    assert "fewer than the 50 per class" in capsys.readouterr().err
