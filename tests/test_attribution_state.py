"""Every method leaves the model as it found it: no hook, no mode, same flags and weights — also on errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.attribution import METHODS, make_method
from convscope.models import Model, Preprocess

OPTIONS = {"occlusion": {"size": 4, "stride": 4}, "smooth_grad": {"samples": 2}, "integrated_gradients": {"steps": 2}}


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 4, 3, padding=1), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def snapshot(net: nn.Module) -> dict:
    return {
        "training": [m.training for m in net.modules()],
        "inplace": [m.inplace for m in net.modules() if hasattr(m, "inplace")],
        "requires_grad": [p.requires_grad for p in net.parameters()],
        "grads": [p.grad for p in net.parameters()],
        "state": {k: v.clone() for k, v in net.state_dict().items()},
    }


def assert_unchanged(net: nn.Module, before: dict) -> None:
    after = snapshot(net)
    assert after["training"] == before["training"]
    assert after["inplace"] == before["inplace"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(a is b for a, b in zip(after["grads"], before["grads"], strict=True))
    assert all(torch.equal(before["state"][k], v) for k, v in after["state"].items())
    for module in net.modules():
        assert not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                    or module._backward_pre_hooks)
    assert not torch._C._is_torch_function_mode_enabled()


@pytest.fixture
def model() -> Model:
    net = Net()
    net.train()  # a model in training mode must come back in training mode
    net.fc.weight.requires_grad_(False)
    return Model(net, preprocess=Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)),
                 class_names=["a", "b", "c"])


@pytest.mark.parametrize("name", list(METHODS))
def test_model_is_left_as_found_after_a_run_and_after_an_error(model, name):
    x = torch.rand(2, 3, 8, 8)
    before = snapshot(model.net)
    method = make_method(name, model, **OPTIONS.get(name, {}))
    maps = method(x, [0, 2])
    assert maps.shape[0] == 2 and torch.isfinite(maps).all()
    assert_unchanged(model.net, before)

    def broken(output):
        raise RuntimeError("target failed")

    if name in ("eigen_cam", "kpca_cam"):  # no target: the first (kernel) principal component of the layer
        return
    with pytest.raises(ValueError if name in ("cam", "finer_cam") else RuntimeError):  # class targets only
        method(x, broken)
    assert_unchanged(model.net, before)
