"""The model as a list of layers in the order they run: output shape, parameters, FLOPs, receptive field.

One forward pass of a zero input with hooks (removed in ``finally``; the model is left as found) records, per
layer, the order it starts in, its output shape and the multiply-adds of the convolutions and linear layers
inside it. Containers (``Sequential``, ``ModuleList``, ``ModuleDict``) are opened one level below the model,
and any layer that holds a layer of ``layers`` is opened down to it, so that each of those gets its own node —
what Netron draws, at the level of modules (Roeder, "Netron", https://netron.app). Receptive fields come from
:func:`convscope.scan.receptive_field.receptive_fields` (Araujo et al., Distill 2019).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from convscope.hooks import inspection_mode
from convscope.models.layers import get_layer
from convscope.scan.receptive_field import receptive_fields

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
COUNTED = ("FLOPs are multiply-adds of the convolutions (output elements × input channels per group × kernel "
           "height × kernel width) and of the linear layers (output elements × input features) for one input; "
           "biases, normalisation, activations, pooling and element-wise operations are not counted.")


def model_graph(model: Any, input_size: Sequence[int], layers: Sequence[str] = ()) -> dict[str, Any]:
    """The layers of ``model`` (a :class:`~convscope.models.Model` or a module) for an input ``[C,H,W]``.

    Returns ``{"input_size", "nodes": [{"name", "kind", "holds", "output_shape", "parameters", "flops",
    "receptive_field": {"size": [h,w], "stride": [y,x]} | {"whole_input": True} | None}], "parameters",
    "flops", "counted"}``; nodes in the order they run, ``layers`` among them.
    """
    net = getattr(model, "net", model)
    if not isinstance(net, nn.Module):
        raise TypeError(f"model_graph needs a convscope Model or a torch module, got {type(model).__name__}")
    size = input_shape(net, input_size)
    names = node_names(net, layers)
    example = torch.zeros(1, *size, device=device_of(net), dtype=dtype_of(net))
    started, shapes, flops = run_once(net, names, example)
    nodes = []
    for name in sorted(started, key=started.__getitem__):
        module = get_layer(net, name)
        nodes.append({"name": name, "kind": type(module).__name__, "holds": holds(module),
                      "output_shape": shapes.get(name),
                      "parameters": sum(p.numel() for p in module.parameters()), "flops": flops.get(name, 0)})
    fields = fields_of(net, [n["name"] for n in nodes], example)
    for node in nodes:
        node["receptive_field"] = fields.get(node["name"])
    return {"input_size": list(size), "nodes": nodes, "parameters": sum(p.numel() for p in net.parameters()),
            "flops": flops[""], "counted": COUNTED}


def holds(module: nn.Module) -> str:
    """What a container holds, e.g. ``'3 × InvertedResidual'`` (``''`` for a module without children)."""
    counts: dict[str, int] = {}
    for child in module.children():
        counts[type(child).__name__] = counts.get(type(child).__name__, 0) + 1
    return ", ".join(f"{count} × {kind}" for kind, count in counts.items())


def input_shape(net: nn.Module, input_size: Sequence[int]) -> tuple[int, int, int]:
    """``[C,H,W]``; ``[H,W]`` takes C from the first convolution."""
    size = [int(s) for s in input_size] if isinstance(input_size, (list, tuple, torch.Size)) else []
    if len(size) == 2:
        first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
        if first is None:
            raise ValueError("give the input size as [C,H,W]: the model has no convolution to read C from")
        size = [first.in_channels, *size]
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"the input size is [C,H,W] of positive whole numbers, got {input_size!r}")
    return size[0], size[1], size[2]


def node_names(net: nn.Module, layers: Sequence[str]) -> list[str]:
    """The modules drawn as nodes: the model's children, containers opened once, and opened down to ``layers``
    (a layer of ``layers`` inside another one is not opened: the site lists it with the outer one)."""
    for layer in layers:
        get_layer(net, layer)  # unknown names are refused with suggestions

    def opened(name: str, module: nn.Module, depth: int) -> list[str]:
        inside = any(layer.startswith(name + ".") for layer in layers)
        if name and (name in layers or not list(module.children())):
            return [name]  # a layer of the atlas (those nested in it are listed with it), or a leaf
        if name and not inside and not (depth == 1 and isinstance(module, CONTAINERS)):
            return [name]
        found = []
        for child, sub in module.named_children():
            found += opened(f"{name}.{child}" if name else child, sub, depth + 1)
        return found

    return opened("", net, 0)


def run_once(net: nn.Module, names: list[str], example: Tensor) -> tuple[dict, dict, dict]:
    """Per node: the order it started in, its output shape ``[C,H,W]`` and the multiply-adds inside it."""
    started: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}
    flops: dict[str, int] = {"": 0}
    owner: dict[nn.Module, str] = {}
    for name in names:
        for module in get_layer(net, name).modules():
            owner.setdefault(module, name)

    def before(name: str):
        def hook(module: nn.Module, inputs: object) -> None:
            started.setdefault(name, len(started))
        return hook

    def after(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) and output else output
            if isinstance(tensor, Tensor) and name not in shapes:
                shapes[name] = list(tensor.shape[1:])
        return hook

    def counter(module: nn.Conv2d | nn.Linear, inputs: tuple, output: Tensor) -> None:
        count = multiply_adds(module, inputs[0], output)
        flops[""] += count
        if module in owner:
            flops[owner[module]] = flops.get(owner[module], 0) + count

    handles = []
    with inspection_mode(net), torch.no_grad():
        try:
            for name in names:
                handles.append(get_layer(net, name).register_forward_pre_hook(before(name)))
                handles.append(get_layer(net, name).register_forward_hook(after(name)))
            for module in net.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    handles.append(module.register_forward_hook(counter))
            net(example)
        finally:
            for handle in handles:
                handle.remove()
    return started, shapes, flops


def multiply_adds(module: nn.Conv2d | nn.Linear, inputs: Tensor, output: Tensor) -> int:
    """Multiply-adds of one convolution or linear layer for one input (batch of 1), from the shapes alone."""
    if isinstance(module, nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return output[0].numel() * (module.in_channels // module.groups) * kernel
    return output[0].numel() * module.in_features


def fields_of(net: nn.Module, names: list[str], example: Tensor) -> dict[str, dict | None]:
    """Receptive field size and stride per node (``None`` where convscope cannot follow the path to it)."""
    try:
        found = receptive_fields(net, names, example)
    except ValueError:  # one unsupported layer: ask layer by layer, to keep the others
        found = {}
        for name in names:
            try:
                found.update(receptive_fields(net, [name], example))
            except ValueError:
                pass
    answer: dict[str, dict | None] = {}
    for name in names:
        field = found.get(name)
        if field is None:
            answer[name] = None
        elif field.whole_input:
            answer[name] = {"whole_input": True}
        else:
            heights, widths = field.bottom - field.top, field.right - field.left
            answer[name] = {"size": [int(heights.max()), int(widths.max())], "stride": list(field.stride)}
    return answer


def device_of(net: nn.Module) -> torch.device:
    tensor = next((t for t in (*net.parameters(), *net.buffers())), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def dtype_of(net: nn.Module) -> torch.dtype:
    tensor = next((t for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()), None)
    return tensor.dtype if tensor is not None else torch.float32
