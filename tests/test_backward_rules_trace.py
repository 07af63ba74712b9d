"""What the forward pass computes decides the deconvnet / guided rules: ReLUs in any spelling get the rule,
hidden squashing and hand-written activations are refused, gates are allowed, class names play no part."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.backward_rules import backward_rules

pytestmark = pytest.mark.usefixtures("one_thread")


class Body(nn.Module):
    """conv → activation (a function of the conv's output) → conv → ReLU → sum."""

    def __init__(self, activation) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 2, 3, padding=1)
        self.activation = activation

    def forward(self, x):
        return F.relu(self.conv2(self.activation(self.conv1(x)))).sum((1, 2, 3))


class Call(nn.Module):
    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


class GELUBlockNet(Body):
    """A ReLU network whose class name happens to say GELU."""


def gradient(net: nn.Module, rule: str, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    with backward_rules(net, rule):
        out = net(x)
    return torch.autograd.grad(out.sum(), x)[0]


X = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(("activation", "named"), [
    (Call(lambda z: F.elu_(z.clone())), "activation (Call): ELU"),
    (nn.Tanh(), "activation (Tanh): a hidden Tanh (its output goes into conv2d)"),
    (nn.Sigmoid(), "activation (Sigmoid): a hidden Sigmoid"),
    (nn.Hardsigmoid(), "activation (Hardsigmoid): a hidden Hardsigmoid"),
    (nn.LogSigmoid(), "activation (LogSigmoid): a hidden LogSigmoid"),
    (nn.Softsign(), "activation (Softsign): a hidden Softsign"),
    (Call(lambda z: z * torch.sigmoid(z)), "activation (Call): x times Sigmoid(x) computed by hand"),
    (Call(lambda z: z.mul_(z.sigmoid())), "activation (Call): x times Sigmoid(x)"),
    (Call(lambda z: z * F.relu6(z + 3.0) / 6.0), "activation (Call): x times relu6(x)"),
    (Call(lambda z: z * 0.5 * (1.0 + torch.erf(z / 2 ** 0.5))), "activation (Call): x times erf(x)"),
    (Call(lambda z: F.threshold(z, 0.5, 0.0)), "threshold(x, 0.5, 0) is not a rectifier at 0"),
])
@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_what_has_no_rule_is_refused_where_it_is_computed(activation, named, rule):
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        gradient(Body(activation), rule, X)
    assert not torch._C._is_torch_function_mode_enabled()


@pytest.mark.parametrize(("written", "module"), [
    (lambda z: z.clamp_min(0), nn.ReLU()), (lambda z: z.clamp(min=0), nn.ReLU()),
    (lambda z: torch.clamp(z, 0.0), nn.ReLU()), (lambda z: F.threshold(z, 0.0, 0.0), nn.ReLU()),
    (lambda z: torch.threshold(z, 0, 0), nn.ReLU()), (lambda z: z.clone().clamp_min_(0), nn.ReLU()),
    (lambda z: z.clamp(0, 6), nn.ReLU6()),
])
@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_relus_written_as_clamps_or_thresholds_get_the_rule(written, module, rule):
    net, reference = Body(Call(written)), Body(module)
    x = X * 3
    expected = gradient(reference, rule, x)
    torch.testing.assert_close(gradient(net, rule, x), expected)
    x = x.clone().requires_grad_(True)
    assert not torch.allclose(torch.autograd.grad(net(x).sum(), x)[0], expected)  # the rule changed something


def test_a_relu_network_named_gelu_runs_like_any_other():
    torch.testing.assert_close(gradient(GELUBlockNet(nn.ReLU()), "guided", X), gradient(Body(nn.ReLU()), "guided", X))


class Excite(nn.Module):
    """Squeeze-and-excitation: a sigmoid of pooled features multiplies the features (a gate)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1))).view(x.shape[0], 3, 1, 1).expand_as(x)


def test_gates_and_an_output_sigmoid_keep_their_ordinary_backward():
    gated = Body(nn.Sequential(nn.ReLU(), Excite()))
    assert torch.isfinite(gradient(gated, "guided", X)).all()
    multi_label = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4), nn.Sigmoid())
    assert gradient(multi_label, "deconvnet", X).abs().sum() > 0
