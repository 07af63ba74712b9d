"""Targets in every form, and gradients checked against finite differences."""

from __future__ import annotations

import pytest
import torch

from convscope import Channel, ClassProbability, ClassScore, Neuron, TopClass, gradient_pass
from convscope.targets import as_target, parse_target

OUTPUT = torch.tensor([[1.0, 5.0, 2.0], [3.0, 0.0, 4.0]])


def test_class_forms(tiny_model):
    assert as_target(2, tiny_model)(OUTPUT, {}).tolist() == [2.0, 4.0]
    assert as_target("dark", tiny_model)(OUTPUT, {}).tolist() == [5.0, 0.0]
    assert as_target([1, 0], tiny_model)(OUTPUT, {}).tolist() == [5.0, 3.0]
    assert as_target(torch.tensor([2, 1]), tiny_model)(OUTPUT, {}).tolist() == [2.0, 0.0]
    assert as_target("top", tiny_model)(OUTPUT, {}).tolist() == [5.0, 4.0]
    assert as_target(None, tiny_model).classes(OUTPUT).tolist() == [1, 2]
    probability = ClassProbability(1)(OUTPUT, {})
    torch.testing.assert_close(probability, OUTPUT.softmax(1)[:, 1])
    assert as_target(lambda out: out.sum(1), tiny_model)(OUTPUT, {}).tolist() == [8.0, 7.0]


def test_bad_targets_are_explained(tiny_model, lite0):
    with pytest.raises(ValueError, match="out of range"):
        as_target(3, tiny_model)
    with pytest.raises(ValueError, match="'dark'"):
        as_target("drak", tiny_model)
    with pytest.raises(ValueError, match="ambiguous"):
        as_target("crane", lite0)
    with pytest.raises(ValueError, match="3 class indices"):
        ClassScore((0, 1, 2)).classes(OUTPUT)
    with pytest.raises(ValueError, match="Tensor\\[B\\]"):
        as_target(lambda out: out, tiny_model)(OUTPUT, {})
    with pytest.raises(ValueError, match="layer"):
        as_target(Channel("nope", 0), tiny_model)


def test_layer_targets():
    maps = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).reshape(2, 2, 3, 3)
    acts = {"conv": maps}
    assert Channel("conv", 1)(OUTPUT, acts).tolist() == [13.0, 31.0]
    assert Neuron("conv", 0)(OUTPUT, acts).tolist() == [4.0, 22.0]
    assert Neuron("conv", 1, 0, 2)(OUTPUT, acts).tolist() == [11.0, 29.0]
    with pytest.raises(ValueError, match="2 channels"):
        Channel("conv", 5)(OUTPUT, acts)
    with pytest.raises(ValueError, match="outside"):
        Neuron("conv", 0, 9, 9)(OUTPUT, acts)


def test_parse_target(tiny_model):
    assert parse_target("2", tiny_model) == ClassScore(2)
    assert parse_target("bright", tiny_model) == ClassScore(0)
    assert parse_target(None, tiny_model) == TopClass()
    assert parse_target("channel:conv:1", tiny_model) == Channel("conv", 1)
    assert parse_target("neuron:conv:1:2:3", tiny_model) == Neuron("conv", 1, 2, 3)
    assert parse_target("neuron:conv:1", tiny_model) == Neuron("conv", 1)
    with pytest.raises(ValueError, match="channel:LAYER:C"):
        parse_target("channel:conv:x", tiny_model)


def test_input_gradient_matches_finite_differences(tiny_model):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    tiny_model.net.double()
    try:
        result = gradient_pass(tiny_model, x, 2)
        eps = 1e-6
        for index in [(0, 0, 0, 0), (0, 1, 3, 4), (0, 2, 7, 7), (0, 0, 4, 2)]:
            plus, minus = x.clone(), x.clone()
            plus[index] += eps
            minus[index] -= eps
            numeric = (tiny_model(plus)[0, 2] - tiny_model(minus)[0, 2]) / (2 * eps)
            assert result.input_grad[index].item() == pytest.approx(numeric.item(), abs=1e-7)
    finally:
        tiny_model.net.float()


def test_batched_gradients_equal_single(tiny_model):
    x = torch.rand(3, 3, 8, 8)
    together = gradient_pass(tiny_model, x, [0, 1, 2], ["relu"])
    for b in range(3):
        alone = gradient_pass(tiny_model, x[b:b + 1], b, ["relu"])
        torch.testing.assert_close(together.input_grad[b:b + 1], alone.input_grad)
        torch.testing.assert_close(together.grads["relu"][b:b + 1], alone.grads["relu"])


def test_channel_target_gradient(tiny_model):
    x = torch.rand(1, 3, 8, 8)
    result = gradient_pass(tiny_model, x, Channel("conv", 0))
    # mean over 64 positions of a linear conv: each input pixel's weight is 1/27 × (#windows covering it) / 64
    assert result.input_grad[0, 0, 4, 4].item() == pytest.approx(9 / 27 / 64)
    assert result.input_grad[0, 0, 0, 0].item() == pytest.approx(4 / 27 / 64)


def test_a_layer_gradient_records_no_graph_before_its_layer_and_equals_the_full_graphs():
    from torch import nn

    from convscope.attribution.base import layer_gradient
    from convscope.models import Model, Preprocess

    class Seen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.modes: list[bool] = []

        def forward(self, x):
            self.modes.append(torch.is_grad_enabled())
            return x

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), Seen(), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), Seen(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    model = Model(net, preprocess=Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)))
    x = torch.randn(2, 3, 8, 8)
    found = layer_gradient(model, x, ClassScore(1), "3")
    assert net[1].modes == [False] and net[5].modes == [True]  # a graph from the layer on only
    seen = []
    handle = net[3].register_forward_hook(lambda module, args, output: seen.append(output))
    (expected,) = torch.autograd.grad(net(x)[:, 1].sum(), seen[0])
    handle.remove()
    assert torch.allclose(found.grads, expected) and torch.equal(found.activations, seen[0].detach())
    assert torch.is_grad_enabled()
    earlier = layer_gradient(model, x, Channel("1", 0), "3")  # a target read before the layer: no gradient there
    assert torch.equal(earlier.grads, torch.zeros_like(earlier.grads))
