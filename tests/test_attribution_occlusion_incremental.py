"""Incremental occlusion gives the plain method's maps, says which path ran, and refuses what it cannot do exactly."""

from __future__ import annotations

import pytest
import torch
from photos import small_inputs
from torch import nn

from convscope.attribution import Occlusion
from convscope.attribution.occlusion_chain import Span, model_chain
from convscope.attribution.occlusion_incremental import _plan
from convscope.models import Model, Preprocess
from convscope.targets import Channel

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def resnet18() -> Model:
    """torchvision's ResNet-18 with random weights (seeded) and non-trivial batch-norm statistics."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=50)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return Model(net.eval(), name="resnet18")


def assert_same_maps(model: Model, x: torch.Tensor, target: object, size: int, stride: int,
                     layer: str | None = None) -> None:
    occlusion = Occlusion(model, size=size, stride=stride, batch_size=7, progress=False)
    fast = occlusion.maps(x, target, layer=layer)
    assert fast.path == occlusion.path == "incremental", occlusion.plain_reason
    plain = Occlusion(model, size=size, stride=stride, batch_size=7, progress=False, incremental=False)
    slow = plain.maps(x, target, layer=layer)
    assert slow.path == plain.path == "plain" and plain.plain_reason == "incremental=False"
    assert (fast.score - slow.score).abs().max() <= 1e-4
    assert (fast.top_probability - slow.top_probability).abs().max() <= 1e-4
    assert torch.equal(fast.top_class, slow.top_class)
    if layer is not None:
        assert torch.equal(fast.channel, slow.channel)
        assert torch.allclose(fast.feature, slow.feature, rtol=1e-4, atol=1e-3)
    assert torch.allclose(occlusion(x, target), slow.to_pixels(slow.drop), atol=1e-4)


def test_lite0_same_maps_at_several_sizes_and_strides(lite0):
    x = small_inputs(lite0, 64)
    assert_same_maps(lite0, x, None, 16, 8, layer="blocks.4")  # 7×7 positions, every border touched
    assert_same_maps(lite0, x[:1], 281, 24, 17, layer="bn2")  # far edge flush: 0, 17, 34, 40


def test_lite0_at_224_pixels(lite0):
    x = small_inputs(lite0, 224)[:1]
    assert_same_maps(lite0, x, None, 32, 96)  # corners, edges and the centre: 0, 96, 192


def test_resnet18_same_maps(resnet18):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert_same_maps(resnet18, x, [3, 7], 12, 13, layer="layer3")  # far edge flush: 0, 13, 26, 39, 52
    assert_same_maps(resnet18, x[:1], None, 32, 16, layer="layer4")


def test_tiny_net_same_maps(tiny_model):
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert_same_maps(tiny_model, x, [0, 1, 2], 3, 1, layer="relu")
    assert_same_maps(tiny_model, x, "bright", 5, 3)


def test_chain_of_lite0_is_local_until_the_head(lite0):
    x = small_inputs(lite0, 64)[:1]
    with torch.no_grad():
        chain = model_chain(lite0.net, x)
    kinds = [type(e.module).__name__ for e in chain.elements]
    assert kinds[-2:] == ["SelectAdaptivePool2d", "Linear"] and chain.local_count == len(kinds) - 2
    assert chain.elements[0].rows == Span(0, 3, 2, 64, 32)  # the stem: 3×3, stride 2, TF 'same' padding below
    assert chain.element_for(lite0.net.blocks[4]) == 12  # stem, bn1, stages of 1, 2, 2, 3 and 3 blocks
    assert chain.element_for(lite0.net.blocks[4][0]) == 10 and chain.element_for(lite0.net.blocks[4][0].conv_dw) is None


def test_plan_covers_every_changed_output_and_aligns_crops():
    span = Span(lo=-1, hi=2, stride=2, size_in=15, size_out=8)  # 3×3, stride 2, padding 1
    starts = torch.tensor([0, 5, 12])
    plan = _plan(span, starts, 3)
    for start, out, crop in zip(starts.tolist(), plan.out.tolist(), plan.crop.tolist(), strict=True):
        changed = [y for y in range(8) if -1 + 2 * y < start + 3 and 2 + 2 * y > start]
        assert out <= min(changed) and max(changed) < out + plan.length
        assert crop % 2 == 0 and 0 <= crop and crop + plan.crop_length <= 15
        assert (crop + plan.crop_length - 15) % 2 == 0 or crop + plan.crop_length == 15
    assert (15 - plan.crop_length) % 2 == 0


class NotAChain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().mean((2, 3)))  # functional steps between the modules


class PositionBias(nn.Module):
    """Adds a learnt value per pixel: position-dependent, so a crop is not the map's corner."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(1, 4, 8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias[..., :x.shape[-2], :x.shape[-1]]


def _model(net: nn.Module) -> Model:
    return Model(net.eval(), preprocess=Preprocess(resize=None, crop=8, mean=(0.0,) * 3, std=(1.0,) * 3), name="t",
                 class_names=["a", "b", "c", "d"][:2 if isinstance(net, NotAChain) else 4])


def test_plain_path_for_what_it_cannot_do_and_the_model_left_as_found(tiny_model):
    x = torch.randn(1, 3, 8, 8)
    cases = [(_model(NotAChain()), 0, "not fed the previous module's output"),
             (_model(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), PositionBias(), nn.Conv2d(4, 4, 3, padding=1),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())), 0, "differed from the plain one"),
             (tiny_model, Channel("conv", 0), "the target reads inner layers")]
    for model, target, reason in cases:
        occlusion = Occlusion(model, size=3, stride=2)
        found = occlusion.maps(x, target)
        assert found.path == "plain" and reason in occlusion.plain_reason
        plain = Occlusion(model, size=3, stride=2, incremental=False).maps(x, target)
        assert torch.equal(found.score, plain.score)
    net = tiny_model.net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    Occlusion(tiny_model, size=3, stride=2).maps(x, 0, layer="relu")
    assert net.training and net.relu.inplace and not any(m._forward_hooks for m in net.modules())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    net.eval()


def test_cli_switch_to_the_plain_path():
    import argparse

    from convscope.cli.attribution import _options

    settings = dict(size=None, stride=None, steps=None, samples=None, batch_size=None)
    assert _options(argparse.Namespace(**settings, plain_occlusion=True))["occlusion"]["incremental"] is False
    assert _options(argparse.Namespace(**settings, plain_occlusion=False))["occlusion"]["incremental"] is None
