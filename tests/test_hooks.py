"""Hooks are removed and the model restored — also when the model or the target raises."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from convscope import capture, gradient_pass, inspection_mode
from convscope.models.layers import describe_layers, get_layer


def _hook_count(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in net.modules())


def _state(net: nn.Module):
    return ([m.training for m in net.modules()], [p.requires_grad for p in net.parameters()],
            [getattr(m, "inplace", None) for m in net.modules()], {k: v.clone() for k, v in net.state_dict().items()})


def test_capture_records_and_removes_hooks(tiny_net):
    x = torch.rand(2, 3, 8, 8)
    with capture(tiny_net, ["conv", "relu"], grads=True) as store:
        out = tiny_net(x.requires_grad_(True))
        out[:, 0].sum().backward()
    assert store.activations["conv"].shape == (2, 2, 8, 8)
    assert store.grads["relu"].shape == (2, 2, 8, 8)
    assert _hook_count(tiny_net) == 0


def test_captured_values_survive_later_in_place_ops(tiny_net):
    x = torch.rand(1, 3, 8, 8) - 0.5
    with capture(tiny_net, ["conv"]) as store:
        tiny_net(x)  # the ReLU after conv is in-place
    assert (store.activations["conv"] < 0).any()


def test_hooks_removed_when_the_model_raises(tiny_net):
    def explode(module, inputs, output):
        raise RuntimeError("boom")

    handle = tiny_net.fc.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"), capture(tiny_net, ["conv", "pool"]):
            tiny_net(torch.rand(1, 3, 8, 8))
    finally:
        handle.remove()
    assert _hook_count(tiny_net) == 0


def test_state_restored_when_the_target_raises(tiny_model):
    net = tiny_model.net
    net.train()
    net.fc.weight.requires_grad_(False)
    before = _state(net)

    def bad_target(output):
        raise ZeroDivisionError("target failed")

    with pytest.raises(ZeroDivisionError):
        gradient_pass(tiny_model, torch.rand(1, 3, 8, 8), bad_target, ["conv"], weights=["conv.weight"])
    after = _state(net)
    assert after[:3] == before[:3]
    for key, value in before[3].items():
        torch.testing.assert_close(after[3][key], value)
    assert _hook_count(net) == 0
    assert net.conv.weight.grad is None


def test_inspection_mode_is_eval_and_out_of_place_inside_only(tiny_net):
    tiny_net.train()
    with inspection_mode(tiny_net):
        assert not tiny_net.training and tiny_net.relu.inplace is False
    assert tiny_net.training and tiny_net.relu.inplace is True


def test_gradient_pass_leaves_inputs_and_grads_alone(tiny_model):
    x = torch.rand(2, 3, 8, 8)
    copy = x.clone()
    tiny_model.net.conv.weight.grad = torch.full_like(tiny_model.net.conv.weight, 7.0)
    gradient_pass(tiny_model, x, 0, ["relu"], weights=["conv.weight"])
    assert torch.equal(x, copy) and not x.requires_grad
    assert (tiny_model.net.conv.weight.grad == 7.0).all()


def test_unknown_layer_lists_the_closest_names(tiny_net, lite0):
    with pytest.raises(ValueError, match="'relu'"):
        get_layer(tiny_net, "rleu")
    with pytest.raises(ValueError, match="blocks.3.0.conv_pw"):
        get_layer(lite0.net, "blocks.3.0.conv_p")
    with pytest.raises(ValueError, match="layer"):
        with capture(tiny_net, ["nope"]):
            pass


def test_describe_layers_gives_output_shapes(tiny_net):
    infos = {i.name: i for i in describe_layers(tiny_net, torch.zeros(1, 3, 8, 8))}
    assert infos["conv"].output_shape == (2, 8, 8) and infos["conv"].parameters == 2 * 27 + 2
    assert infos["pool"].output_shape == (2, 4, 4)
    assert infos["fc"].output_shape == (3,)
    assert _hook_count(tiny_net) == 0


def test_a_copy_made_while_hooks_are_on_the_model_runs_without_them():
    # another thread's capture is on the model when the explorer copies it for its background lane
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    from convscope.hooks import copy_without_hooks

    seen = {module: name for name, module in net.named_modules() if name}
    handles = [m.register_forward_hook(lambda module, args, output: seen[module]) for m in seen]
    try:
        twin = copy_without_hooks(net, net)
        plain = copy.deepcopy(net)
    finally:
        for handle in handles:
            handle.remove()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(KeyError):  # what a plain deepcopy does: the copied closures name the original modules
        plain(x)
    assert torch.equal(twin(x), net(x))
    assert all(not m._forward_hooks for m in twin.modules())
    assert all(m._forward_hooks == {} for m in net.modules())
