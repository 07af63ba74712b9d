"""Guided backprop and deconvnet rules for SiLU, GELU, Hardswish and Mish, against a hand computation."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.attribution import Deconvnet, GuidedBackprop
from convscope.backward_rules import backward_rules
from convscope.models import Model, Preprocess

pytestmark = pytest.mark.usefixtures("one_thread")


class Functional(nn.Module):
    """An activation called as a function (``F.silu(x)``) rather than through its module."""

    def __init__(self, function, **options) -> None:
        super().__init__()
        self.function, self.options = function, options

    def forward(self, x):
        return self.function(x, **self.options)


ACTIVATIONS = {
    "SiLU": (nn.SiLU, F.silu),
    "GELU": (nn.GELU, F.gelu),
    "GELU-tanh": (lambda: nn.GELU(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "Hardswish": (nn.Hardswish, F.hardswish),
    "Mish": (nn.Mish, F.mish),
    "ReLU": (nn.ReLU, F.relu),
}


class TwoLayers(nn.Module):
    def __init__(self, act1: nn.Module, act2: nn.Module) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.fc1, self.act1, self.fc2, self.act2, self.fc3 = nn.Linear(5, 6), act1, nn.Linear(6, 6), act2, \
            nn.Linear(6, 1)
        self.double()

    def forward(self, x):
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))


def derivative(function, z: torch.Tensor) -> torch.Tensor:
    """f'(z) by central finite differences (float64), independent of autograd and of the rule's code."""
    step = 1e-6
    return (function(z + step) - function(z - step)) / (2 * step)


def by_hand(net: TwoLayers, function, x: torch.Tensor, rule: str) -> torch.Tensor:
    """Backward through fc3, act2, fc2, act1, fc1 with each activation's rule written out."""
    z1 = net.fc1(x)
    z2 = net.fc2(function(z1))
    g = net.fc3.weight.detach().expand(x.shape[0], -1)
    for z, layer in ((z2, net.fc2), (z1, net.fc1)):
        g = g.clamp_min(0)
        if rule == "guided":
            g = derivative(function, z.detach()) * (z.detach() > 0) * g
        g = g @ layer.weight.detach()
    return g


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
@pytest.mark.parametrize("functional", [False, True], ids=["module", "function"])
def test_rule_equals_the_hand_computation(name, rule, functional):
    make, function = ACTIVATIONS[name]
    acts = [Functional(function) for _ in range(2)] if functional else [make(), make()]
    net = TwoLayers(*acts).eval()
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    with backward_rules(net, rule):
        (grad,) = torch.autograd.grad(net(x).sum(), x)
    expected = by_hand(net, function, x, rule)
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-8)
    plain = torch.autograd.grad(net(x).sum(), x)[0]
    assert not torch.allclose(grad, plain)  # the rule changed something: a test that can fail


def test_in_place_calls_get_the_same_rule():
    x = torch.randn(3, 5, dtype=torch.float64).requires_grad_(True)
    results = []
    for act in (nn.SiLU(), nn.SiLU(inplace=True), Functional(F.silu, inplace=True), Functional(F.hardswish)):
        net = TwoLayers(act, nn.ReLU()).eval()
        with backward_rules(net, "guided"):
            results.append(torch.autograd.grad(net(x).sum(), x)[0])
    torch.testing.assert_close(results[1], results[0])
    torch.testing.assert_close(results[2], results[0])
    assert not torch.allclose(results[3], results[0])


def test_hand_written_and_other_smooth_activations_are_refused_by_name():
    from timm.layers.activations import Swish

    for act, named in ((Swish(), "act1 (Swish): x times Sigmoid(x)"), (nn.ELU(), "act1 (ELU): ELU"),
                       (nn.Softplus(), "act1 (Softplus): Softplus"), (Functional(F.elu), "act1 (Functional): ELU")):
        net = TwoLayers(act, nn.ReLU()).eval()
        x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
        with pytest.raises(ValueError, match="cannot handle: " + re.escape(named)):
            with backward_rules(net, "guided"):
                net(x)


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenetv3_large_100", "convnext_atto"])
def test_guided_backprop_and_deconvnet_run_on_smooth_families(name):
    import timm

    torch.manual_seed(0)
    model = Model(timm.create_model(name, pretrained=False).eval(), name=name,
                  preprocess=Preprocess(resize=None, crop=None))
    x = torch.randn(1, 3, 64, 64)
    for method in (GuidedBackprop(model), Deconvnet(model)):
        maps = method(x, 3)
        assert maps.shape == x.shape and torch.isfinite(maps).all() and maps.abs().sum() > 0
