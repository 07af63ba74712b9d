"""LRP: conservation layer by layer, the rules by hand, and the same maps as Zennit on VGG-11 and ResNet-18."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from convscope.attribution import METHODS
from convscope.attribution.lrp import LRP, propagate
from convscope.attribution.lrp_composites import NAMES, Composite, composite
from convscope.attribution.lrp_rules import alpha_beta, epsilon, flat, gamma, w_square, z_plus
from convscope.models import Model, Preprocess
from convscope.targets import ClassScore, as_target

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def wrap(net: nn.Module, size: int = 16, classes: int = 10) -> Model:
    return Model(net.eval(), preprocess=Preprocess(resize=None, crop=size, mean=MEAN, std=STD),
                 class_names=[f"c{i}" for i in range(classes)])


class Residual(nn.Module):
    def __init__(self, channels: int, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        out += x  # an in-place residual sum, as torchvision's ResNet writes it
        return self.relu(out)


def small_net(bias: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
                         Residual(6, bias), nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU6(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10, bias=bias))


def test_relevance_is_conserved_layer_by_layer_and_sums_to_the_logit():
    model = wrap(small_net())
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model.net.double()
    layers = ["0", "1", "2", "3", "4", "5", "6", "8"]
    tiny = 1e-12
    for rules in (Composite("lrp-0", epsilon(tiny), epsilon(tiny), norm_epsilon=tiny),
                  Composite("z+", z_plus(tiny), epsilon(tiny), norm_epsilon=tiny),
                  Composite("a2b1", alpha_beta(2, 1, tiny), epsilon(tiny), norm_epsilon=tiny),
                  Composite("a1b0", alpha_beta(1, 0, tiny), epsilon(tiny), norm_epsilon=tiny),
                  Composite("flat", z_plus(tiny), epsilon(tiny), flat(tiny), (nn.Conv2d,), tiny),
                  Composite("w2", gamma(0.5, tiny), epsilon(tiny), w_square(tiny), (nn.Conv2d,), tiny)):
        found = propagate(model, x, as_target(4, model), rules, record=layers)
        logits = found.output[:, 4]
        for name in layers:
            torch.testing.assert_close(found.layers[name].sum((1, 2, 3) if found.layers[name].dim() == 4 else 1),
                                       logits, rtol=1e-6, atol=1e-9, msg=f"{rules.name} at {name}")
        torch.testing.assert_close(found.inputs.sum((1, 2, 3)), logits, rtol=1e-6, atol=1e-9, msg=rules.name)


def test_the_residual_sum_splits_relevance_in_proportion_to_its_two_inputs():
    model = wrap(small_net().double())
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    found = propagate(model, x, as_target(1, model), Composite("lrp-0", epsilon(1e-12), epsilon(1e-12), norm_epsilon=0),
                      record=["3.conv", "3.relu"])
    with torch.no_grad():
        pooled = model.net[:3](x)
        branch = model.net[3].conv(pooled)
    # the relevance of the sum (passed unchanged by the ReLU after it) reaches the branch as R · branch / (branch + x)
    expected = found.layers["3.relu"] * branch / (branch + pooled)
    torch.testing.assert_close(found.layers["3.conv"], expected, rtol=1e-9, atol=1e-12)


def test_a_saturated_relu6_passes_relevance_on_where_its_gradient_is_zero():
    net = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(5.0)
    model = wrap(net.double(), size=4, classes=2)
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64) + 1  # every activation saturates at 6
    found = propagate(model, x, as_target(1, model), Composite("lrp-0", epsilon(1e-12), epsilon(1e-12),
                                                                 norm_epsilon=1e-12))
    assert float(found.inputs.sum()) == pytest.approx(float(found.output[0, 1]), rel=1e-9)


def test_epsilon_rule_on_one_linear_layer_by_hand():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, 1.0, 1.0]]))
        net[1].bias.copy_(torch.tensor([0.5, 0.0]))
    model = Model(net, preprocess=Preprocess(resize=None, crop=2, mean=(0.0,), std=(1.0,), channels=1),
                  class_names=["a", "b"])
    x = torch.tensor([[[[1.0, 1.0], [2.0, 4.0]]]])
    z = 1 - 2 + 1 + 0 + 0.5  # 0.5
    relevance = LRP(model, Composite("eps", epsilon(0.25), epsilon(0.25)))(x, 0)
    expected = torch.tensor([1.0, -2.0, 1.0, 0.0]) * z / (z + 0.25)  # x_i w_i · R / (z + ε), R = z
    torch.testing.assert_close(relevance.flatten(), expected)


@pytest.fixture(scope="module")
def reference_nets() -> dict[str, nn.Module]:
    """VGG-11 (a small head) and ResNet-18 with random weights; ResNet's norms have statistics away from 0 and 1."""
    import torchvision
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    vgg = nn.Sequential(make_layers(cfgs["A"]), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(2048, 64),
                        nn.ReLU(True), nn.Dropout(), nn.Linear(64, 10))
    resnet = torchvision.models.resnet18(num_classes=10)
    for module in resnet.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1), module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5), module.bias.data.uniform_(-0.1, 0.1)
    return {"vgg11": vgg.eval(), "resnet18": resnet.eval()}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("architecture", ["vgg11", "resnet18"])
def test_lrp_equals_zennit_with_its_canonizers(reference_nets, architecture, name):
    pytest.importorskip("zennit")
    from zennit import composites as zc
    from zennit.attribution import Gradient
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    # the γ-rule on a random ResNet amplifies float32 rounding ~100×: there both run in float64
    dtype = torch.float64 if (architecture, name) == ("resnet18", "epsilon-gamma-box") else torch.float32
    net = copy.deepcopy(reference_nets[architecture]).to(dtype)
    low = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1).to(dtype)
    high = ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1).to(dtype)
    theirs_composite = {"epsilon-plus": zc.EpsilonPlus, "epsilon-plus-flat": zc.EpsilonPlusFlat,
                        "epsilon-alpha2-beta1": zc.EpsilonAlpha2Beta1,
                        "epsilon-alpha2-beta1-flat": zc.EpsilonAlpha2Beta1Flat,
                        "epsilon-gamma-box": lambda canonizers: zc.EpsilonGammaBox(low, high, canonizers=canonizers)}
    canonizer = ResNetCanonizer if architecture == "resnet18" else VGGCanonizer
    target = torch.tensor([3, 7])
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=dtype)
    ours = LRP(wrap(net, size=64), name)(x, target)
    reference = copy.deepcopy(net)
    with Gradient(reference, theirs_composite[name](canonizers=[canonizer()])) as attributor:
        for module in reference.modules():  # Zennit 0.4.6 leaves merged norms dividing by √(1 + eps)
            if isinstance(module, nn.BatchNorm2d):
                module.eps = 0.0
        _, theirs = attributor(x.clone(), lambda out: out * nn.functional.one_hot(target, 10))
    error = float((ours - theirs).abs().max() / theirs.abs().max())
    assert error <= 1e-5, f"{name} on {architecture}: {error:.2e}"


def test_lrp_on_the_embedded_lite0_is_batched_as_unbatched_and_leaves_it_untouched(lite0):
    from tests.test_attribution_gradients import small_inputs

    x = small_inputs(lite0)
    state = {k: v.clone() for k, v in lite0.net.state_dict().items()}
    for name in ("epsilon-plus-flat", "epsilon-alpha2-beta1"):
        maps = LRP(lite0, name)(x, [281, 967])
        assert maps.shape == x.shape and torch.isfinite(maps).all()
        single = LRP(lite0, name)(x[1:], 967)
        torch.testing.assert_close(maps[1:], single, rtol=1e-3, atol=1e-4 * float(single.abs().max()))
    assert all(torch.equal(v, lite0.net.state_dict()[k]) for k, v in state.items())
    assert not any(m._forward_hooks for m in lite0.net.modules())


def test_lite0_residual_sums_are_split_not_doubled(lite0):
    from tests.test_attribution_gradients import small_inputs

    x = small_inputs(lite0, count=1)
    found = propagate(lite0, x, ClassScore(281), Composite("lrp-0", epsilon(1e-9), epsilon(1e-9)),
                      record=["blocks.1", "blocks.2"])
    # blocks.2 has residual blocks; without the proportional split each one would double the relevance
    upper, lower = found.layers["blocks.2"].sum(), found.layers["blocks.1"].sum()
    assert float(lower / upper) == pytest.approx(1.0, abs=0.3)


@pytest.mark.parametrize("layer, words", [(nn.SiLU(), "SiLU at '2'"), (nn.BatchNorm2d(4), "BatchNorm2d at '2'")])
def test_a_layer_without_a_rule_is_refused_by_name(layer, words):
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), layer, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=f"LRP has no rule for {words}"):
        LRP(wrap(net, size=8, classes=3))(torch.rand(1, 3, 8, 8), 0)


def test_a_gate_multiplying_two_activations_is_refused():
    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.gate = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.conv(x) * self.gate(x))

    model = wrap(Gated(), size=8, classes=3)
    with pytest.raises(ValueError, match="product of two activations"):
        LRP(model)(torch.rand(1, 3, 8, 8), 0)
    assert not any(m._forward_hooks for m in model.net.modules())


def test_composite_names_and_refusals():
    assert composite("EpsilonPlusFlat").name == composite("epsilon_plus_flat").name == "epsilon-plus-flat"
    with pytest.raises(ValueError, match="unknown LRP composite 'epsilon-flat'; did you mean 'epsilon-plus-flat'"):
        composite("epsilon-flat")
    with pytest.raises(ValueError, match="alpha − beta = 1"):
        alpha_beta(2, 2)
    assert "lrp" in METHODS


def test_cli_explains_with_a_composite_and_refuses_an_unknown_one(tmp_path, capsys):
    from convscope.cli import main

    assert main(["explain", "sample:chelsea", "--method", "lrp", "--composite", "epsilon-plus", "--targets",
                 "tabby", "--out", str(tmp_path / "ok")]) == 0
    names = sorted(p.name for p in (tmp_path / "ok").iterdir())
    assert [name.rsplit("_", 1)[0] for name in names] == ["explain_chelsea_lrp_tabby_map",
                                                          "explain_chelsea_lrp_tabby_overlay"]
    assert main(["explain", "sample:chelsea", "--method", "lrp", "--composite", "plus", "--out",
                 str(tmp_path / "bad")]) == 2
    assert "unknown LRP composite 'plus'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_refused_layer_inside_a_folded_norm_is_named_as_in_the_model():
    timm = pytest.importorskip("timm")
    net = timm.create_model("efficientnet_b0", pretrained=False, num_classes=5)
    with pytest.raises(ValueError, match="LRP has no rule for SiLU at 'bn1.act'"):
        LRP(wrap(net, size=32, classes=5))(torch.rand(1, 3, 32, 32), 0)
