"""A tiny model, a picture set and an equality check for the scan tests; run as a script (under torchrun)
it scans them.

    torchrun --nproc_per_node 2 tests/scan_worker.py OUT_FOLDER
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from convscope.data import TensorPictures
from convscope.models import Model, Preprocess

LAYERS = ["relu1", "relu2", "fc"]


class Small(nn.Module):
    """conv 3→4 (3×3) → ReLU → max-pool → conv 4→5 → ReLU → global mean → linear 5→3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 5, 3)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.pool(self.relu1(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def small_model(seed: int = 0) -> Model:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = Small().eval()
    with torch.no_grad():
        net.conv2.bias[4] = -100.0  # channel 4 of relu2 never fires: a dead filter
    return Model(net, preprocess=Preprocess(resize=None, crop=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
                 class_names=["a", "b", "c"], name="small")


def pictures(count: int = 23, seed: int = 1) -> TensorPictures:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, 10, 10, generator=generator)
    images[5] = images[6]  # two identical pictures: their activations tie
    return TensorPictures(images, torch.arange(count) % 3, ["a", "b", "c"])


def assert_same_scan(got, expected, layers=LAYERS) -> None:
    """Two scan results hold exactly the same labels, features, top activations and statistics."""
    assert torch.equal(got.labels, expected.labels)
    for layer in layers:
        assert torch.equal(got.features(layer), expected.features(layer))
        for name in ("values", "images", "positions"):
            assert torch.equal(getattr(got.top(layer), name), getattr(expected.top(layer), name))
        for name in ("mean", "std", "active_images", "max", "image_max_mean"):
            assert torch.equal(getattr(got.statistics(layer), name), getattr(expected.statistics(layer), name))


if __name__ == "__main__":
    from convscope.scan import Scan

    torch.set_num_threads(1)
    Scan(small_model(), LAYERS, k=4).run(pictures(), sys.argv[1], batch_size=3, progress=False)
