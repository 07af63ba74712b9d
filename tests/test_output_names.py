"""Output names: readable, and different whenever the picture path, target, method, layer or settings differ, so
that no run silently replaces another's result."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from convscope.cli.output_names import output_name, picture_source

FASHION = ["--model", "fashion_cnn", "--device", "cpu"]


def test_names_are_readable_and_tell_apart_what_differs(tmp_path) -> None:
    def name(source: str, target: str | None = None) -> str:
        return output_name("explain", "x", "grad_cam", target, "map",
                           identity={"picture": picture_source(source), "target": target})

    assert re.fullmatch(r"explain_x_grad_cam_map_[0-9a-f]{6}\.png", name("a/x.png"))
    assert name("a/x.png") == name("a/x.png") and name("a/x.png") != name("b/x.png")
    assert name("a/x.png", "3").startswith("explain_x_grad_cam_3_map_") and name("a/x.png", "3") != name(
        "a/x.png", "4")
    assert output_name("activations", "a b", identity={"picture": "a b.png"}) != output_name(
        "activations", "a_b", identity={"picture": "a_b.png"})  # the same readable part, other files


def _pictures(folder, *names: str) -> list[str]:
    """Small different greyscale pictures under ``names`` (relative to ``folder``)."""
    paths = []
    for seed, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def written(folder, pattern: str = "*.png") -> list[str]:
    return sorted(p.name for p in folder.glob(pattern))


def test_explain_keeps_two_targets_and_two_pictures_of_one_name(tmp_path, capsys) -> None:
    a, b = _pictures(tmp_path, "a/x.png", "b/x.png")
    out = tmp_path / "out"
    for target in ("Trouser", "Bag"):
        assert main(["explain", a, "--targets", target, "--out", str(out), *FASHION]) == 0
    assert main(["explain", a, b, "--out", str(out), *FASHION]) == 0
    names = written(out, "*_map_*.png")
    assert len(names) == 4 and len(written(out, "*_overlay_*.png")) == 4  # two targets, then both x.png
    assert {re.sub(r"_[0-9a-f]{6}\.png$", "", n) for n in names} == {
        "explain_x_grad_cam_Trouser_map", "explain_x_grad_cam_Bag_map", "explain_x_grad_cam_map"}
    before = {n: (out / n).read_bytes() for n in written(out)}
    assert main(["explain", a, "--targets", "Bag", "--out", str(out), *FASHION]) == 0  # the same run again
    assert {n: (out / n).read_bytes() for n in written(out)} == before  # replaces only its own, identical result


LITE0 = ["--device", "cpu"]  # invert reads colour pictures


@pytest.mark.parametrize("command", [
    ["fool", "--method", "fgsm", *FASHION],
    ["activations", "--layer", "relu1", *FASHION],
    ["invert", "--layers", "conv_stem", "--steps", "2", "--size", "32", *LITE0],
    ["dream", "--layer", "relu1", "--octaves", "1", "--steps", "1", "--size", "28", *FASHION],
    ["stats", "--target", "Bag", *FASHION],
    ["invariance", "--transform", "rotate", *FASHION],
], ids=lambda command: command[0])
def test_picture_commands_write_one_result_per_picture(tmp_path, command, capsys) -> None:
    first, second, third = _pictures(tmp_path, "a b.png", "a_b.png", "c/a b.png")
    out = tmp_path / "out"
    name, options = command[0], command[1:]
    for picture in (first, second, third):
        assert main([name, picture, *options, "--out", str(out)]) == 0, capsys.readouterr().err
    made = written(out)
    per_run = len(made) // 3
    assert per_run >= 1 and len(made) == 3 * per_run, made  # three pictures, three results
