"""The feature-space commands end to end, the Fashion-MNIST CNN and its training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_scan_data import write_fake_fashion

from convscope.cli import main
from convscope.data import FashionMNIST, has_fashion_mnist
from convscope.models import load_model
from convscope.models.fashion import FASHION_PREPROCESS
from convscope.models.fashion_training import evaluate_accuracy


def test_shipped_fashion_cnn_reaches_90_percent() -> None:
    if not has_fashion_mnist():
        pytest.skip("Fashion-MNIST is not installed (scripts/setup installs Debian's dataset-fashion-mnist)")
    model = load_model("fashion_cnn", device="cpu")
    pictures, labels = FashionMNIST(split="test").tensors()
    assert evaluate_accuracy(model.net, FASHION_PREPROCESS.normalize(pictures), labels) >= 0.90
    assert [name for name, _ in model.net.named_children()][:3] == ["conv1", "relu1", "pool1"]
    assert model.net.conv1.weight.shape == (32, 1, 7, 7) and model.classes()[9] == "Ankle boot"


def test_train_writes_a_loadable_checkpoint_per_epoch(tmp_path, capsys) -> None:
    write_fake_fashion(tmp_path / "data", train=40, test=20)
    state = torch.random.get_rng_state()
    assert main(["train", str(tmp_path / "data"), "--epochs", "2", "--batch-size", "16",
                 "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    assert torch.equal(torch.random.get_rng_state(), state)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["epoch_00.pt", "epoch_01.pt", "epoch_02.pt", "history.csv"]
    first, last = (load_model("fashion_cnn", weights=tmp_path / "run" / f"epoch_{n:02d}.pt", device="cpu")
                   for n in (0, 2))
    assert not torch.equal(first.net.conv1.weight, last.net.conv1.weight)
    checkpoint = torch.load(tmp_path / "run" / "epoch_02.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and 0 <= checkpoint["test_accuracy"] <= 1
    assert "test accuracy" in capsys.readouterr().out


@pytest.fixture
def folder(tmp_path):
    """Twelve 28×28 grey pictures in three class folders: bars, blocks and rings."""
    size = np.arange(28)
    for n in range(12):
        kind = ["bars", "blocks", "rings"][n % 3]
        y, x = np.meshgrid(size, size, indexing="ij")
        if kind == "bars":
            image = ((x + n) % 7 < 3) * 255
        elif kind == "blocks":
            image = ((y > 4 + n) & (y < 20) & (x > 6) & (x < 22)) * 255
        else:
            image = (abs(np.hypot(y - 14, x - 14) - 4 - n % 5) < 1.5) * 255
        (tmp_path / "pictures" / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(tmp_path / "pictures" / kind / f"{n}.png")
    return tmp_path / "pictures"


def test_scan_and_every_view_from_the_command_line(tmp_path, folder, capsys) -> None:
    out = tmp_path / "scan"
    assert main(["scan", str(folder), "--model", "fashion_cnn", "--layers", "relu2", "relu7", "--batch-size", "5",
                 "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "relu2: 64×14×14, features (12, 64)" in printed
    assert main(["top-patches", str(out), "--layer", "relu2", "--channels", "0-2,5", "-k", "4", "--context"]) == 0
    assert len(list(out.glob("top_patches_relu2_0-5_??????.png"))) == 1
    assert len(list(out.glob("top_patches_relu2_0-5_context_*.png"))) == 1
    assert main(["neighbors", str(out), "#0", str(folder / "rings" / "2.png"), "-k", "3"]) == 0
    assert "in feature space" in capsys.readouterr().out and len(list(out.glob("neighbors_relu7_2queries_*.png"))) == 1
    assert main(["embed", str(out), "--method", "pca", "--grid", "3"]) == 0
    [table] = out.glob("pca_relu7_*.csv")
    assert table.with_suffix(".png").is_file() and len(list(out.glob("pca_relu7_grid_*.png"))) == 1
    assert table.read_text().count("\n") == 13
    assert main(["dead-filters", str(out)]) == 0
    assert len(list(out.glob("dead_filters_relu2_*.png"))) == 1 and len(list(out.glob("dead_filters_relu7_*.png"))) == 1
    assert main(["scan", str(folder), "--model", "fashion_cnn", "--layers", "relu3", "--out", str(out)]) == 2
    assert "different scan" in capsys.readouterr().err
    assert main(["top-patches", str(out), "--layer", "relu9"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["top-patches", str(out), "--channels", "x-y"]) == 2
    assert main(["neighbors", str(out), "#99"]) == 2
    assert main(["embed", str(tmp_path / "nothing")]) == 2
    assert "holds no scan" in capsys.readouterr().err
