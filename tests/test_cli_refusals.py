"""Values and files that used to end in a traceback, a hang, a misleading message or a meaningless exit 0:
each is refused in one line (exit 2) that says what is wrong and what would work, before any work."""

from __future__ import annotations

import os

import pytest
import torch
from cli_runs import assert_refused, run
from PIL import Image

FASHION = ["--model", "fashion_cnn"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, str]:
    """Bad files, a small scan, an explain-set folder and a TorchScript model, by name."""
    root = tmp_path_factory.mktemp("refusals")
    paths = {"root": str(root)}
    (root / "folder").mkdir()
    paths["folder"] = str(root / "folder")
    (root / "a_file").write_text("not a folder")
    paths["file"] = str(root / "a_file")
    (root / "classes.bin").write_bytes(bytes(range(128, 256)) * 4)
    paths["binary"] = str(root / "classes.bin")
    os.mkfifo(root / "pipe")
    paths["fifo"] = str(root / "pipe")
    from convscope.models import load_model

    net = load_model("fashion_cnn", device="cpu").net
    torch.jit.trace(net, torch.zeros(1, 1, 28, 28)).save(str(root / "scripted.pt"))
    paths["torchscript"] = str(root / "scripted.pt")
    pictures = root / "pictures"
    pictures.mkdir()
    for n in range(6):
        Image.new("L", (28, 28), n * 40).save(pictures / f"{n}.png")
    paths["pictures"] = str(pictures)
    return paths


CASES = [  # (name, command line with {placeholders} from `made`, pattern the one line must match)
    ("classes file is a pipe", ["predict", "sample:chelsea", *FASHION, "--classes", "{fifo}"],
     r"class names file .*pipe' is not a regular file"),
    ("classes file is a folder", ["predict", "sample:chelsea", *FASHION, "--classes", "{folder}"],
     r"class names file .*folder' is a folder: give a text file with one class name per line"),
    ("classes file is binary", ["predict", "sample:chelsea", *FASHION, "--classes", "{binary}"],
     r"class names file .*classes\.bin' is not UTF-8 text .*one class name per line"),
    ("model file is a pipe", ["predict", "sample:chelsea", "--model", "{fifo}"],
     r"model file .*pipe' is not a regular file"),
    ("model file is a folder", ["predict", "sample:chelsea", "--model", "{folder}"],
     r"model file .*folder' is a folder"),
    ("port above 65535", ["explore", "--port", "99999"], r"--port: must lie in 0 … 65535"),
    ("cache is /dev/null", ["explore", "--cache", "/dev/null"], r"--cache '/dev/null' is not a folder"),
    ("cache is a file", ["explore", "--cache", "{file}"], r"--cache .*a_file' is a file"),
    ("epsilon 2", ["fool", "sample:chelsea", *FASHION, "--method", "fgsm", "--epsilon", "2"],
     r"--epsilon: must lie in \(0, 1\]"),
    ("epsilon 0", ["fool", "sample:chelsea", *FASHION, "--method", "fgsm", "--epsilon", "0"],
     r"--epsilon: must lie in \(0, 1\]"),
    ("epsilon nan", ["fool", "sample:chelsea", *FASHION, "--method", "fgsm", "--epsilon", "nan"],
     r"--epsilon: must lie in \(0, 1\]"),
    ("robustness budget 3", ["fool", "fashion-mnist:test", "--robustness", *FASHION, "--epsilons", "0", "3"],
     r"--epsilons: must lie in \[0, 1\]"),
    ("style network saved to a folder", ["fast-style", "train", "sample:brick", "--content", "sample:chelsea",
                                         "--steps", "1", "--size", "16", "--width", "2", "--batch-size", "1",
                                         "--save", "{folder}"], r"folder' is a folder: give a file name"),
    ("style network saved to /dev/full", ["fast-style", "train", "sample:brick", "--content", "sample:chelsea",
                                          "--steps", "1", "--size", "16", "--width", "2", "--batch-size", "1",
                                          "--save", "/dev/full"], r"'/dev/full' is not a regular file"),
    ("style network is a pipe", ["fast-style", "apply", "{fifo}", "sample:chelsea"],
     r"style network file .*pipe' is not a regular file"),
    ("scan -k huge", ["scan", "{pictures}", *FASHION, "--layers", "relu2", "-k", "1000000000", "--out",
                      "{root}/huge_k"], r"top-1000000000 table of 64 channels would take about .* available: give "
                                        r"a smaller -k"),
    ("classviz size huge", ["classviz", "--targets", "1", *FASHION, "--size", "200000"],
     r"--size: 1 picture of 200000×200000 pixels would take about .*TB of memory"),
    ("dream octaves huge", ["dream", "sample:chelsea", "--layer", "relu2", *FASHION, "--octaves", "100"],
     r"100 octaves of ×1\.4 would shrink the 320-pixel photo below 16 pixels.*at most 9 octaves"),
    ("featviz neuron of a vector", ["featviz", "--layer", "fc7", "--channels", "3", "--kind", "neuron", *FASHION],
     r"layer 'fc7' gives a vector \(256 values, no positions\).*--kind channel"),
    ("train kernel above the picture", ["train", "--kernel1", "40"], r"40×40 kernel .*larger than the 28×28 pictures"),
    ("train stride above the picture", ["train", "--stride1", "29"], r"stride 29 is larger than the 28×28 pictures"),
    ("scan a TorchScript model", ["scan", "{pictures}", "--model", "{torchscript}", "--layers", "relu2", "--out",
                                  "{root}/scripted_scan"], r"TorchScript model, whose layers cannot be hooked"),
]


@pytest.mark.parametrize(("argv", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_in_one_line(argv, pattern, made, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # default output folders, were anything written
    status, err = run([a.format(**made) for a in argv], capsys)
    assert_refused(status, err, pattern)
    assert not any(p.name.startswith(("huge_k", "scripted_scan")) for p in os.scandir(made["root"]))
    assert not os.listdir(tmp_path)


def _scan(made, capsys, name: str) -> str:
    out = os.path.join(made["root"], name)
    status, err = run(["scan", made["pictures"], *FASHION, "--layers", "relu2", "fc7", "--out", out, "-q"], capsys)
    assert status == 0, err
    return out


def test_a_pipe_in_a_scan_folder_is_damage_not_a_hang(made, capsys) -> None:
    scan = _scan(made, capsys, "piped")
    layer = os.path.join(scan, "layers", "relu2.pt")
    os.unlink(layer)
    os.mkfifo(layer)
    status, err = run(["top-patches", scan, "--layer", "relu2"], capsys, seconds=20)
    assert_refused(status, err, r"relu2\.pt is damaged \(not a regular file.*--overwrite")


def test_perplexity_above_the_points_is_refused_and_a_lowered_one_is_said(made, capsys) -> None:
    scan = _scan(made, capsys, "embedded")
    status, err = run(["embed", scan, "--perplexity", "1e9", "--grid", "0"], capsys)
    assert_refused(status, err, r"t-SNE perplexity 1e\+09 is not less than the 6 points .*use at most 1\.67")
    assert not any(name.startswith("tsne") for name in os.listdir(scan))
    from convscope.scan.embedding import embed_features

    points, note = embed_features(torch.randn(20, 4, generator=torch.Generator().manual_seed(0)), perplexity=10)
    assert points.shape == (20, 2) and note == "t-SNE perplexity 10 lowered to 6.33, (n − 1)/3 for 20 points"


def test_a_chunk_without_its_fingerprint_is_damage_not_a_key_error(made, capsys) -> None:
    out = os.path.join(made["root"], "maps")
    argv = ["explain-set", made["pictures"], *FASHION, "--batch-size", "3", "--out", out, "-q"]
    status, err = run(argv, capsys)
    assert status == 0, err
    chunk = os.path.join(out, "chunks", "chunk_00000.pt")
    saved = torch.load(chunk, weights_only=True)
    del saved["fingerprint"]
    torch.save(saved, chunk)
    status, err = run(argv, capsys)
    assert_refused(status, err, r"chunk_00000\.pt is damaged \(it lacks fingerprint\); `convscope explain-set … "
                                r"--overwrite` starts again")


def test_feature_visualisation_of_a_vector_layer_of_a_fixed_size_model() -> None:
    from convscope.models import load_model
    from convscope.synthesis import visualise_features
    from convscope.synthesis.matching import layer_features

    model = load_model("fashion_cnn", device="cpu")
    result = visualise_features(model, "fc7", [3, 5], size=64, steps=8, progress=False)
    assert result.images.shape == (2, 3, 64, 64)
    shown = torch.nn.functional.interpolate(result.images, size=(28, 28), mode="bilinear", align_corners=False)
    reference = layer_features(model, shown, ["fc7"])["fc7"][[0, 1], [3, 5]]
    torch.testing.assert_close(result.activations, reference)
    assert result.losses[-1].sum() < result.losses[0].sum()  # the loss, −activation, fell: the activations rose


def test_available_memory_is_read_and_a_larger_need_refused() -> None:
    from convscope.memory import available_bytes, check_fits, size_text

    free = available_bytes()
    assert free is not None and free > 0
    check_fits(1, "one byte", "never said")
    with pytest.raises(ValueError, match=r"^the thing would take about .* of memory, more than the .* available: "
                                         r"make it smaller$"):
        check_fits(free * 2, "the thing", "make it smaller")
    assert [size_text(n) for n in (12, 3000, 5.2e9)] == ["12 bytes", "3 kB", "5.2 GB"]
