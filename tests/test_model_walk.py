"""The walk over a model is made once and renewed when its structure changes, so no call sees a stale model."""

from __future__ import annotations

import torch
from torch import nn

from convscope.attribution import GradCAM, GuidedBackprop
from convscope.hooks import capture, inspection_mode, model_walk, resolve_layer
from convscope.models import Model, Preprocess


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_the_walk_is_kept_and_lists_what_modules_and_parameters_list():
    model = net()
    walk = model_walk(model)
    assert model_walk(model) is walk
    assert list(walk.modules(model)) == list(model.modules())
    assert list(walk.parameters) == list(model.parameters())
    assert list(walk.switchable) == [model[1], model[3]]


def test_a_replaced_layer_or_parameter_renews_the_walk():
    model = net()
    walk = model_walk(model)
    model[3] = nn.Dropout(0.5)  # a new module in training mode, registered by assignment
    model.train()
    with inspection_mode(model):
        assert not model[3].training
    assert model_walk(model) is not walk
    model[0].weight = nn.Parameter(torch.zeros_like(model[0].weight))
    assert model[0].weight in model_walk(model).parameters
    with inspection_mode(model):
        assert not model[0].weight.requires_grad
    assert model[0].weight.requires_grad and model[3].training


def test_layers_are_found_by_their_current_name_after_a_deletion():
    model = net()
    model_walk(model)
    del model[1]  # every later layer moves up one place; no registration hook fires
    name, module = resolve_layer(model, "1")
    assert module is model[1] and isinstance(module, nn.Conv2d)
    assert resolve_layer(model, model[1]) == ("1", model[1])
    with capture(model, ["1"]) as store:
        model(torch.rand(1, 3, 8, 8))
    assert store.activations["1"].shape == (1, 4, 8, 8)


def test_methods_see_an_activation_swapped_in_after_a_first_call():
    model = Model(net(), preprocess=Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)))
    x = torch.rand(2, 3, 8, 8)
    GuidedBackprop(model)(x, 0)
    model.net[3] = nn.ELU()  # guided backprop has no rule for it: the cached "all rectifiers" must not be used
    try:
        GuidedBackprop(model)(x, 0)
    except ValueError as error:
        assert "SiLU" in str(error)
    else:
        raise AssertionError("guided backprop ran on a model whose activation it cannot handle")
    before = GradCAM(model, layer="2")(x, 0)
    model.net[2] = nn.Conv2d(4, 4, 3, padding=1)
    assert not torch.equal(GradCAM(model, layer="2")(x, 0), before)
