"""Addressing layers by dotted name, and listing them with their output shapes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.suggestions import unknown


def layer_names(net: nn.Module) -> list[str]:
    """Dotted names of every sub-module, in definition order (the root is left out)."""
    return [name for name, _ in net.named_modules() if name]


def get_layer(net: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The sub-module named ``layer`` (or ``layer`` itself when it belongs to ``net``)."""
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in net.modules()):
            raise ValueError(f"the module {type(layer).__name__} is not part of this model")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"a layer is a dotted name or a module, got {type(layer).__name__}")
    modules = dict(net.named_modules())
    if layer in modules and layer:
        return modules[layer]
    raise unknown("layer", layer, layer_names(net), hint="`convscope layers` lists them all")


def module_weight(module: nn.Module) -> Tensor:
    """``module.weight`` (a convolution's or linear layer's), which torch's stubs type as optional."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor: pick a convolution or a linear layer")
    return weight


def layer_name(net: nn.Module, layer: str | nn.Module) -> str:
    """The dotted name of a layer given by name or module."""
    if isinstance(layer, str):
        get_layer(net, layer)
        return layer
    for name, module in net.named_modules():
        if module is layer and name:
            return name
    raise ValueError(f"the module {type(layer).__name__} is not part of this model")


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    parameters: int


def describe_layers(net: nn.Module, example: Tensor) -> list[LayerInfo]:
    """Every named layer with its type, output shape for ``example`` and its own parameter count."""
    from convscope.hooks import capture, inspection_mode

    names = layer_names(net)
    with inspection_mode(net), capture(net, names) as store, torch.no_grad():
        net(example)
    infos = []
    for name, module in net.named_modules():
        if not name:
            continue
        output = store.activations.get(name)
        shape = tuple(output.shape[1:]) if output is not None else None
        own = sum(p.numel() for p in module.parameters(recurse=False))
        infos.append(LayerInfo(name, type(module).__name__, shape, own))
    return infos


def conv_layers(net: nn.Module) -> list[str]:
    """Names of the 2-d convolutions, in definition order."""
    return [name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
