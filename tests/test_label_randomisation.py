"""The data randomisation test: training on permuted labels, and comparing explanations of the two models."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from scipy.stats import spearmanr

from convscope.analysis.label_randomisation import data_randomisation
from convscope.data.fashion_mnist import has_fashion_mnist
from convscope.models.fashion import untrained_fashion_model

needs_fashion_mnist = pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed "
                                         "(scripts/setup installs Debian's dataset-fashion-mnist)")
TINY_OPTIONS = {"occlusion": {"size": 3, "stride": 1}}


def _pictures(count: int = 3, size: int = 8, channels: int = 3) -> torch.Tensor:
    return torch.rand(count, channels, size, size, generator=torch.Generator().manual_seed(0))


def test_identical_models_give_identical_explanations(tiny_model):
    twin = dataclasses.replace(tiny_model, net=copy.deepcopy(tiny_model.net))
    methods = ["saliency", "guided_backprop", "grad_cam", "cam", "occlusion"]
    result = data_randomisation(tiny_model, twin, _pictures(), methods, options=TINY_OPTIONS)
    assert result.methods == methods and not result.skipped
    for m in methods:
        torch.testing.assert_close(result.maps[m][0], result.maps[m][1])
        assert torch.allclose(result.ssim[m], torch.ones(3), atol=1e-5)
        finite = result.spearman[m][~result.spearman[m].isnan()]  # a constant map has no rank correlation
        assert torch.allclose(finite, torch.ones_like(finite), atol=1e-5)


def test_similarities_are_those_of_the_two_maps(tiny_model):
    other = copy.deepcopy(tiny_model.net)
    with torch.no_grad():
        other.conv.weight.copy_(torch.randn(other.conv.weight.shape, generator=torch.Generator().manual_seed(1)))
    changed = dataclasses.replace(tiny_model, net=other)
    result = data_randomisation(tiny_model, changed, _pictures(), ["saliency"], target=0)
    maps = result.maps["saliency"]
    for i in range(3):
        expected = spearmanr(maps[0, i].flatten().numpy(), maps[1, i].flatten().numpy()).statistic
        assert result.spearman["saliency"][i].item() == pytest.approx(expected, abs=1e-5)
    assert result.spearman["saliency"].mean() < 0.9  # different weights, different explanations
    assert result.rows()[0]["method"] == "saliency" and len(result.summary()) == 2


def test_methods_that_do_not_apply_are_listed_with_the_reason():
    trained, shuffled = untrained_fashion_model(0), untrained_fashion_model(1)
    result = data_randomisation(trained, shuffled, _pictures(4, 28, 1), ["saliency", "cam"],
                                target=torch.tensor([0, 1, 2, 3]))
    assert result.methods == ["saliency"]
    assert "global average pooling" in result.skipped["cam"]
    assert result.maps["saliency"].shape == (2, 4, 28, 28)
    assert result.picture().array.ndim == 3
    assert any("not applicable" in line for line in result.summary())


def test_the_two_models_must_share_an_architecture(tiny_model):
    with pytest.raises(ValueError, match="one architecture"):
        data_randomisation(tiny_model, untrained_fashion_model(0), _pictures(), ["saliency"])


@needs_fashion_mnist
def test_shuffled_labels_are_a_seeded_permutation():
    from convscope.models.fashion_training import TrainingSettings, training_pictures

    pictures, true = training_pictures(None, TrainingSettings(train_pictures=500))
    _, shuffled = training_pictures(None, TrainingSettings(train_pictures=500, shuffle_labels=True))
    _, again = training_pictures(None, TrainingSettings(train_pictures=500, shuffle_labels=True))
    _, other_seed = training_pictures(None, TrainingSettings(train_pictures=500, shuffle_labels=True, seed=1))
    assert pictures.shape == (500, 1, 28, 28)
    assert torch.equal(true.bincount(minlength=10), shuffled.bincount(minlength=10))  # the same labels, moved
    assert (true == shuffled).float().mean() < 0.25
    assert torch.equal(shuffled, again) and not torch.equal(shuffled, other_seed)


def test_train_on_shuffled_labels_from_the_command_line(tmp_path, capsys):
    from test_scan_data import write_fake_fashion

    from convscope.cli import main

    write_fake_fashion(tmp_path / "data", train=40, test=20)
    assert main(["train", str(tmp_path / "data"), "--shuffle-labels", "--train-pictures", "24",
                 "--no-augment", "--weight-decay", "0", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
                 "--out", str(tmp_path / "run")]) == 0
    saved = torch.load(tmp_path / "run" / "epoch_01.pt", weights_only=True)
    assert saved["settings"]["shuffle_labels"] and saved["settings"]["train_pictures"] == 24
    assert not saved["settings"]["augment"] and saved["settings"]["weight_decay"] == 0
    assert 0 <= saved["train_accuracy"] <= 1
    assert "training accuracy" in capsys.readouterr().out


@needs_fashion_mnist
def test_the_shipped_random_label_model_memorised_its_labels():
    from convscope.data.fashion_mnist import FashionMNIST
    from convscope.models.fashion import FASHION_PREPROCESS, label_randomisation_pair
    from convscope.models.fashion_training import LABEL_PAIR_SETTINGS, evaluate_accuracy, training_pictures

    trained, shuffled = label_randomisation_pair()
    pictures, true = training_pictures(None, LABEL_PAIR_SETTINGS)
    _, permuted = training_pictures(None, dataclasses.replace(LABEL_PAIR_SETTINGS, shuffle_labels=True))
    test_pictures, test_labels = FashionMNIST(split="test").tensors()
    pictures, test_pictures = FASHION_PREPROCESS.normalize(pictures), FASHION_PREPROCESS.normalize(test_pictures)
    assert evaluate_accuracy(shuffled.net, pictures, permuted) > 0.95  # it fits labels that mean nothing …
    assert evaluate_accuracy(shuffled.net, test_pictures, test_labels) < 0.15  # … and knows nothing
    assert evaluate_accuracy(trained.net, pictures, true) > 0.95
    assert evaluate_accuracy(trained.net, test_pictures, test_labels) > 0.7


@needs_fashion_mnist
def test_data_randomisation_on_the_shipped_pair():
    from convscope.analysis.label_randomisation import fashion_label_randomisation

    result = fashion_label_randomisation(["saliency", "guided_backprop", "cam"])
    assert result.methods == ["saliency", "guided_backprop"] and "cam" in result.skipped
    assert result.maps["saliency"].shape == (2, 10, 28, 28)  # one picture per class
    assert all(-1 <= r["spearman"] <= 1 and -1 <= r["ssim"] <= 1 for r in result.rows())


def _tiny_at_32(tiny_net):
    from convscope.models import Model, Preprocess

    return Model(tiny_net, preprocess=Preprocess(resize=32, crop=32, mean=(0.0,) * 3, std=(1.0,) * 3),
                 class_names=["bright", "dark", "contrast"], name="tiny")


def test_run_checks_writes_every_table(tiny_net, tmp_path):
    import json

    from convscope.analysis import run_checks

    model = _tiny_at_32(tiny_net)
    lines = []
    summary = run_checks(model, tmp_path, methods=["saliency", "grad_cam"], photos=["chelsea", "coffee"], steps=4,
                         log=lines.append)
    written = {p.name for p in tmp_path.iterdir()}
    assert {"sanity_cascading.csv", "faithfulness.csv", "pointing_game.csv", "checks.json"} <= written
    assert json.loads((tmp_path / "checks.json").read_text())["methods"] == ["saliency", "grad_cam"]
    if has_fashion_mnist():
        assert "sanity_data_randomisation.png" in written and len(summary["data_randomisation"]) == 3
    else:
        assert any("Data randomisation skipped" in line for line in lines)


def test_run_checks_says_why_it_skips_data_randomisation(tiny_net, tmp_path, monkeypatch):
    from convscope.analysis import run_checks

    monkeypatch.setenv("CONVSCOPE_FASHION_MNIST", str(tmp_path / "nowhere"))
    lines = []
    summary = run_checks(_tiny_at_32(tiny_net), tmp_path / "out", methods=["saliency"], photos=["chelsea"], steps=2,
                         log=lines.append)
    assert "data_randomisation" not in summary
    assert any("Data randomisation skipped" in line and "dataset-fashion-mnist" in line for line in lines)


def test_the_studies_leave_a_training_model_training(tiny_model):
    from convscope.analysis import sanity_checks

    twin = dataclasses.replace(tiny_model, net=copy.deepcopy(tiny_model.net))
    tiny_model.net.train()
    data_randomisation(tiny_model, twin, _pictures(), ["saliency"])
    sanity_checks(tiny_model, _pictures(), ["saliency"])
    assert tiny_model.net.training and all(m.training for m in tiny_model.net.modules())


def test_the_shipped_pair_was_trained_with_the_recorded_settings():
    from convscope.models.fashion import LABEL_PAIR_WEIGHTS
    from convscope.models.fashion_training import LABEL_PAIR_SETTINGS, TrainingSettings

    for kind, path in LABEL_PAIR_WEIGHTS.items():
        saved = torch.load(path, weights_only=True)["settings"]
        expected = dataclasses.replace(LABEL_PAIR_SETTINGS, shuffle_labels=kind == "random labels")
        # options added since (architecture, adversarial training …) were at their defaults
        assert TrainingSettings(**saved) == expected and set(saved) <= set(dataclasses.asdict(expected))


def test_missing_pair_weights_say_how_to_make_them(tmp_path, monkeypatch):
    from convscope.models import fashion

    monkeypatch.setitem(fashion.LABEL_PAIR_WEIGHTS, "random labels", tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"convscope train --shuffle-labels --train-pictures 1000 .* epoch_60\.pt"):
        fashion.label_randomisation_pair()
