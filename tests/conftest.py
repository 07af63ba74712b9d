"""Shared fixtures: tiny hand-checkable models and the embedded model (loaded once)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.models import Model, Preprocess


class TinyNet(nn.Module):
    """conv(3→2, 3×3) → ReLU → max-pool 2 → global average pool → linear(2→3), fixed weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.stack([torch.ones(3, 3, 3), -torch.ones(3, 3, 3)]) / 27)
            self.conv.bias.copy_(torch.tensor([0.0, 0.5]))
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.gap(self.pool(self.relu(self.conv(x))))))


@pytest.fixture
def tiny_net() -> TinyNet:
    return TinyNet().eval()


@pytest.fixture
def tiny_model(tiny_net: TinyNet) -> Model:
    """TinyNet with identity preprocessing at 8×8 and three named classes."""
    preprocess = Preprocess(resize=None, crop=8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return Model(tiny_net, preprocess=preprocess, class_names=["bright", "dark", "contrast"], name="tiny")


@pytest.fixture
def one_thread():
    """One torch thread for tiny workloads, so they do not wait on a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lite0() -> Model:
    """The embedded EfficientNet-Lite0 on the CPU (shared by the whole session: do not modify it)."""
    from convscope.models import load_model

    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def chelsea() -> torch.Tensor:
    from convscope.images import load_sample

    return load_sample("chelsea")
