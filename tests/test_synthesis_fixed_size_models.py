"""Synthesis on a model that reads only 28×28 grey pictures (the Fashion-MNIST CNN): class models are made at any
size and shown to the model at its own, inversions draw their grey original, facets refuse in one line."""

from __future__ import annotations

from convscope.cli import main


def test_class_models_of_a_fixed_size_model(tmp_path, capsys):
    assert main(["classviz", "--targets", "Trouser", "--steps", "2", "--size", "32", "--model", "fashion_cnn",
                 "--out", str(tmp_path), "-q"]) == 0
    assert "Trouser (1): p =" in capsys.readouterr().out
    assert len(list(tmp_path.glob("classviz_Trouser_*.png"))) == 1


def test_inversion_of_a_grey_model_draws_its_original(tmp_path):
    assert main(["invert", "sample:coffee", "--layers", "relu2", "--steps", "2", "--model", "fashion_cnn",
                 "--out", str(tmp_path), "-q"]) == 0
    assert len(list(tmp_path.glob("invert_coffee_relu2_*.png"))) == 1


def test_facets_refuse_a_grey_model(tmp_path, capsys):
    assert main(["facets", "--layer", "relu2", "--channel", "0", "--steps", "2", "--model", "fashion_cnn",
                 "--out", str(tmp_path), "-q"]) == 2
    assert "use featviz" in capsys.readouterr().err
