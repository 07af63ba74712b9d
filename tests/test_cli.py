"""The convscope command as a user runs it (in-process, on the embedded model, CPU)."""

from __future__ import annotations

import pytest
from PIL import Image

from convscope.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict(capsys):
    code, out, _ = run(capsys, "predict", "sample:chelsea", "sample:coffee", "-k", "3", "--device", "cpu")
    assert code == 0
    assert "chelsea:" in out and "cat" in out and "espresso" in out


def test_layers(capsys):
    code, out, _ = run(capsys, "layers", "--device", "cpu")
    assert code == 0
    assert "conv_stem" in out and "32×112×112" in out and "classifier" in out and "1000" in out


def test_filters_activations_stats_write_pictures(capsys, tmp_path):
    code, out, _ = run(capsys, "filters", "--out", str(tmp_path), "--device", "cpu")
    assert code == 0 and len(list(tmp_path.glob("filters_efficientnet_lite0_conv_stem_*.png"))) == 1
    code, out, _ = run(capsys, "activations", "sample:chelsea", "--layer", "bn1", "--out", str(tmp_path),
                       "--device", "cpu")
    assert code == 0 and "all zero for this picture" in out
    [activations] = tmp_path.glob("activations_chelsea_bn1_*.png")
    assert Image.open(activations).size[0] > 500
    code, out, _ = run(capsys, "stats", "sample:chelsea", "--target", "tabby", "--out", str(tmp_path),
                       "--device", "cpu")
    assert code == 0 and "conv_stem" in out
    [table] = tmp_path.glob("stats_chelsea_tabby_*.csv")
    assert table.read_text().startswith("layer,kind,shape") and table.with_suffix(".png").exists()


@pytest.mark.parametrize("argv, message", [
    (["activations", "sample:chelsea", "--layer", "blocks.9"], "unknown layer 'blocks.9'"),
    (["predict", "no/such/file.jpg"], "does not exist"),
    (["stats", "sample:chelsea", "--target", "tabbby"], "did you mean"),
    (["filters", "--layer", "classifier"], "not a convolution"),
    (["predict", "sample:chelsea", "--model", "resnet18", "--weights", "missing.pth"], "does not exist"),
])
def test_bad_input_exits_2_with_a_clear_message(capsys, argv, message):
    code, _, err = run(capsys, *argv, "--device", "cpu")
    assert code == 2
    assert message in err and "Traceback" not in err


def test_demo_section_writes_a_gallery(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path), "--device", "cpu", "--only", "weights")
    assert code == 0
    index = (tmp_path / "index.html").read_text()
    images = [part.split("'")[0] for part in index.split("<img src='")[1:]]
    assert len(images) >= 8
    for name in images:
        assert (tmp_path / name).exists(), name


def test_demo_rejects_an_unknown_section(capsys, tmp_path):
    code, _, err = run(capsys, "demo", "--out", str(tmp_path), "--only", "nothing-like-this")
    assert code == 2 and "no demo section" in err


@pytest.mark.slow
def test_demo_atlas_is_a_real_atlas_the_gallery_links_to(capsys, tmp_path):
    import json

    from convscope.demo.atlas_section import CHANNELS, LAYER

    code, _, _ = run(capsys, "demo", "--out", str(tmp_path), "--device", "cpu", "--only", "atlas")
    assert code == 0
    index = (tmp_path / "index.html").read_text()
    assert "<a href='atlas/index.html'>" in index and (tmp_path / "atlas_channels.png").is_file()
    atlas = json.loads((tmp_path / "atlas" / "atlas.json").read_text())
    assert atlas["model"] == "efficientnet_lite0" and atlas["scan"] is not None
    assert atlas["layers"][0]["name"] == LAYER and atlas["layers"][0]["selected"] == list(CHANNELS)
    for channel in CHANNELS:
        record = json.loads((tmp_path / "atlas" / "layers" / LAYER / "channels" / f"{channel}.json").read_text())
        assert len(record["images"]["top"]) == 6 and len(record["images"]["top_projections"]) == 6
        for path in [record["images"]["vis"], *record["images"]["top"]]:
            assert (tmp_path / "atlas" / path).is_file()
    page = (tmp_path / "atlas" / "index.html").read_text()
    assert 'id="selected"' in page and "<b>chosen channels</b> only" in page and 'id="unfinished"' not in page


@pytest.mark.slow
def test_full_demo_gallery(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path), "--device", "cpu")
    assert code == 0
    index = (tmp_path / "index.html").read_text()
    for name in [part.split("'")[0] for part in index.split("<img src='")[1:]]:
        assert (tmp_path / name).exists(), name
