"""Backward rules of the deconvnet and guided backprop: literal values, every rectifier form, clear refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.backward_rules import backward_rules
from convscope.hooks import inspection_mode

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny workloads: no waiting on a busy core


def rule_gradient(net: nn.Module, x: torch.Tensor, rule: str | None, grad_out: torch.Tensor | None = None):
    x = x.clone().requires_grad_(True)
    with inspection_mode(net):
        if rule is None:
            out = net(x)
        else:
            with backward_rules(net, rule):
                out = net(x)
        (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out) if grad_out is None else grad_out)
    return grad


class Scale(nn.Module):
    """y = act(w * x) elementwise: the gradient arriving at the activation is w."""

    def __init__(self, act: nn.Module | None, weight: list[float], functional=None) -> None:
        super().__init__()
        self.act, self.functional = act, functional
        self.register_buffer("weight", torch.tensor(weight))

    def forward(self, x):
        z = x * self.weight
        return self.functional(z) if self.functional is not None else self.act(z)


X = torch.tensor([-2.0, -0.5, 0.5, 3.0, 7.0])
UPSTREAM = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0])


@pytest.mark.parametrize("act", [nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6(), nn.ReLU6(inplace=True),
                                 nn.Hardtanh(0.0, 6.0)])
def test_rectifier_rules_literal(act):
    net = Scale(act, [1.0] * 5)
    # forward input x, backward signal g: deconvnet relu(g); guided relu(g) where the activation passed x.
    deconv = rule_gradient(net, X, "deconvnet", UPSTREAM)
    guided = rule_gradient(net, X, "guided", UPSTREAM)
    assert deconv.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0]
    clamps_at_six = isinstance(act, nn.Hardtanh)
    assert guided.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0 if clamps_at_six else 1.0]
    plain = rule_gradient(net, X, None, UPSTREAM)
    assert plain.tolist() == [0.0, 0.0, -1.0, 1.0, 0.0 if clamps_at_six else 1.0]


@pytest.mark.parametrize("functional", [F.relu, torch.relu, lambda z: z.relu(), lambda z: F.relu(z, inplace=True),
                                        lambda z: torch.relu_(z), lambda z: z.clone().relu_(), F.relu6,
                                        lambda z: F.hardtanh(z, 0.0, 6.0), lambda z: F.hardtanh_(z, 0.0, 6.0)])
def test_functional_and_inplace_calls_get_the_rule(functional):
    net = Scale(None, [1.0] * 5, functional=functional)
    guided = rule_gradient(net, X, "guided", UPSTREAM)
    assert guided[:4].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_leaky_relu_and_prelu_rules():
    slope = 0.1
    for act in (nn.LeakyReLU(slope), nn.PReLU(init=slope)):
        net = Scale(act, [1.0] * 5)
        deconv = rule_gradient(net, X, "deconvnet", UPSTREAM)
        guided = rule_gradient(net, X, "guided", UPSTREAM)
        # deconvnet: leaky(g); guided: f'(x) * leaky(g)
        assert torch.allclose(deconv, torch.tensor([1.0, -0.1, -0.1, 1.0, 1.0]))
        assert torch.allclose(guided, torch.tensor([0.1, -0.01, -0.1, 1.0, 1.0]))


def test_deconvnet_and_guided_differ_where_the_forward_mask_matters(tiny_net):
    # A dark image: every "bright" unit is negative before the ReLU, so guided backprop (and the plain gradient)
    # pass nothing, while the deconvnet rectifies only the positive backward signal and passes it down.
    x = -torch.ones(1, 3, 4, 4)
    signal = torch.tensor([[1.0, 0.0, 0.0]])  # class "bright"
    guided = rule_gradient(tiny_net, x, "guided", signal)
    deconv = rule_gradient(tiny_net, x, "deconvnet", signal)
    assert guided.abs().max() == 0
    # GAP gives 1/4 to each pooled unit, the max-pool switches (ties: top-left) route it to (0,0),(0,2),(2,0),(2,2),
    # and the transposed all-1/27 filter spreads it to each pixel's 3x3 neighbourhood.
    counts = torch.tensor([1.0, 2.0, 1.0, 1.0])
    expected = 0.25 / 27 * counts[:, None] * counts[None, :]
    assert torch.allclose(deconv[0], expected.expand(3, 4, 4), atol=1e-7)


def test_rules_agree_with_captum_on_relu_nets(tiny_net):
    from captum.attr import Deconvolution, GuidedBackprop

    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2])
    for rule, oracle in (("guided", GuidedBackprop), ("deconvnet", Deconvolution)):
        ours = rule_gradient(tiny_net, x, rule, F.one_hot(target, 3).float())
        with pytest.warns(UserWarning):
            theirs = oracle(tiny_net).attribute(x.clone(), target=target)
        assert torch.allclose(ours, theirs, atol=1e-7)
        assert ours.abs().max() > 0


def test_relu6_rules_agree_with_module_backward_hooks():
    # An independent formulation of the same rules: full backward hooks that rewrite the ReLU6 gradient.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU6(), nn.Conv2d(4, 4, 3), nn.ReLU6(), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 2)).eval()
    x = torch.randn(2, 3, 8, 8) * 4
    for rule in ("guided", "deconvnet"):
        def hook(module, grad_in, grad_out, rule=rule):
            return ((grad_in[0] if rule == "guided" else grad_out[0]).clamp(min=0),)

        handles = [m.register_full_backward_hook(hook) for m in net if isinstance(m, nn.ReLU6)]
        try:
            reference = rule_gradient(net, x, None, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        finally:
            for handle in handles:
                handle.remove()
        ours = rule_gradient(net, x, rule, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        assert torch.allclose(ours, reference, atol=1e-6)


def test_smooth_activations_are_refused_by_name():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ELU(), nn.Conv2d(2, 2, 1), nn.Softplus())
    with pytest.raises(ValueError, match=r"cannot handle: 1 \(ELU\): ELU\. Use a method"):
        rule_gradient(net, torch.randn(1, 3, 5, 5), "guided")


def test_functional_smooth_activation_is_refused_and_mode_is_left():
    net = Scale(None, [1.0] * 5, functional=F.elu)
    with pytest.raises(ValueError, match=r"\(model\) \(Scale\): ELU"):
        rule_gradient(net, X, "deconvnet")
    assert not torch._C._is_torch_function_mode_enabled()


def test_a_model_without_rectifiers_is_refused():
    net = nn.Sequential(nn.Linear(5, 5), nn.Tanh())
    with pytest.raises(ValueError, match="found no rectifier"):
        rule_gradient(net, X[None], "guided")


def test_squashing_hardtanh_and_unknown_rules_are_refused():
    with pytest.raises(ValueError, match=r"Hardtanh\(-1, 1\) is not a rectifier"):
        rule_gradient(Scale(nn.Hardtanh(), [1.0] * 5), X, "guided")
    with pytest.raises(ValueError, match="unknown backward rule"):
        with backward_rules(nn.ReLU(), "lrp"):
            pass


def test_model_is_left_as_found(tiny_net):
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    tiny_net.train()
    with pytest.raises(RuntimeError, match="boom"):
        x = torch.randn(1, 3, 8, 8, requires_grad=True)
        with inspection_mode(tiny_net), backward_rules(tiny_net, "guided"):
            tiny_net(x)
            raise RuntimeError("boom")
    assert tiny_net.training and tiny_net.relu.inplace
    assert not torch._C._is_torch_function_mode_enabled()
    assert all(torch.equal(before[k], v) for k, v in tiny_net.state_dict().items())
    out = tiny_net.eval()(x)
    (plain,) = torch.autograd.grad(out[:, 2].sum(), x)
    assert plain.abs().max() > 0  # ordinary autograd works again outside the block


def test_rules_agree_with_captum_on_a_resnet_with_reused_inplace_relus():
    # torchvision's ResNet calls one in-place nn.ReLU twice per block, adds residuals in place and max-pools.
    import torchvision
    from captum.attr import Deconvolution, GuidedBackprop

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    target = torch.tensor([1, 2])
    for rule, oracle in (("guided", GuidedBackprop), ("deconvnet", Deconvolution)):
        ours = rule_gradient(net, x, rule, F.one_hot(target, 1000).float())
        with pytest.warns(UserWarning):
            theirs = oracle(net).attribute(x.clone(), target=target)
        assert torch.allclose(ours, theirs, atol=1e-6 * float(theirs.abs().max()))
    assert net.relu.inplace
