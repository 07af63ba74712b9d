"""Choosing the layer a class-activation-map method looks at, and reading it as feature maps ``[B,C,h,w]``.

The default layer (:func:`last_spatial_layer`) is the last layer, in the order the forward
pass finishes them, that

1. has a spatial grid (:mod:`convscope.models.tokens`: ``[B,C,h,w]``, channels-last
   ``[B,h,w,C]`` or tokens ``[B,N,C]`` on the patch grid, with ``h·w > 1``);
2. is not inside an attention module (its queries, keys, values and per-head tensors are
   not features of the picture at a position), does not hand its input on unchanged
   (``Identity``, dropout at evaluation), and is neither a recurrent layer (LSTM, GRU, RNN) nor
   finished after one (their outputs are sequences of steps, not positions on the picture, even
   when the number of steps happens to tile it);
3. is one the output still depends on at the grid positions: the gradient of the output
   there is not all zero. This skips, in a ViT whose head reads the class token, every
   layer after the last attention (their patch tokens no longer reach the output), so
   the default is ``blocks.11.norm1``, the input of the last attention, as pytorch-grad-cam
   recommends.

A block's hook fires after its children, so a block wins over the last layer inside it:
``bn2`` on EfficientNet-Lite/B0, ``layer4`` on a ResNet, ``stages`` on ConvNeXt, ``norm`` on Swin.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.hooks import inspection_mode, model_walk, refuse_script_module
from convscope.models.layers import layer_name
from convscope.models.model import Model
from convscope.models.tokens import Grid, Reshape, find_grid, prefix_tokens
from convscope.targets import check_finite_output


@dataclass(frozen=True)
class SpatialLayer:
    """A layer with a spatial grid; ``reaches``: the output depends on it at the grid positions."""

    name: str
    grid: Grid
    reaches: bool


def spatial_layers(model: Model, inputs: Tensor) -> list[SpatialLayer]:
    """Layers with a spatial grid that rule 2 admits, in the order the forward pass finishes them."""
    net = model.net
    refuse_script_module(net)
    example = inputs[:1].detach().clone().requires_grad_(True)
    names = {module: name for name, module in net.named_modules() if name}
    inside = _attention_parts(net)
    recurrent = recurrent_layers(net)
    prefix = prefix_tokens(net)
    found: dict[str, tuple[Tensor, Grid]] = {}
    sequence = False  # set once a recurrent layer has finished: what finishes after it reads a sequence

    def hook(module: nn.Module, args: tuple, output: object) -> object:
        nonlocal sequence
        name = names[module]
        sequence = sequence or name in recurrent
        if sequence or name in inside or (args and output is args[0]) or not isinstance(output, Tensor):
            return None
        grid = find_grid(output, 1, (example.shape[-2], example.shape[-1]), prefix)
        if isinstance(grid, Grid) and output.requires_grad:
            found.pop(name, None)  # a module called again counts where it last finished
            found[name] = (output, grid)
            return output.clone()  # later in-place operations cannot change what was recorded
        return None

    handles = [module.register_forward_hook(hook) for module in names]
    try:
        with inspection_mode(net):
            output = net(example)
            tensor = _first_tensor(output)
            check_finite_output(tensor, model.name)
            if tensor is None or not found:
                return [SpatialLayer(name, grid, False) for name, (_, grid) in found.items()]
            generator = torch.Generator().manual_seed(0)
            weights = torch.randn(tensor.shape, generator=generator).to(tensor.device, tensor.dtype)
            grads = torch.autograd.grad((tensor * weights).sum(), [t for t, _ in found.values()], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    return [SpatialLayer(name, grid, grad is not None and bool(grid.maps(grad).abs().sum() > 0))
            for (name, (_, grid)), grad in zip(found.items(), grads, strict=True)]


def last_spatial_layer(model: Model, inputs: Tensor) -> str:
    """The default layer of the CAM family: the last layer with a spatial grid that the output depends on."""
    layers = spatial_layers(model, inputs)
    reaching = [layer.name for layer in layers if layer.reaches]
    if reaching:
        return reaching[-1]
    if layers:
        raise ValueError(f"the output of {model.name} does not depend on the grid positions of any layer with a "
                         f"spatial grid ({', '.join(layer.name for layer in layers[-4:])}); give layer= yourself")
    recurrent = recurrent_layers(model.net)
    if recurrent:
        raise ValueError(f"no layer of {model.name} before its recurrent layer ({', '.join(recurrent)}) has a spatial "
                         "grid, and a recurrent layer's output is a sequence of steps, not positions on the picture: "
                         "explain the input with saliency or integrated gradients instead")
    raise ValueError(f"no layer of {model.name} has a spatial grid (feature maps [B,C,h,w] larger than 1×1, "
                     "channels-last maps or patch tokens); give layer= and reshape= to turn its output into "
                     "[B,C,h,w]")


def layer_grid(model: Model, layer: str, output: Tensor, inputs: Tensor, reshape: Reshape | None = None) -> Grid:
    """The grid of ``layer``'s ``output`` for ``inputs``, or a ``ValueError`` that says why not and what would work."""
    recurrent = recurrent_layers(model.net)
    if recurrent and reshape is None:
        usable = [found.name for found in spatial_layers(model, inputs) if found.reaches]
        if layer in recurrent or layer not in usable:
            where = "is" if layer in recurrent else "comes after"
            hint = (f"layers that would work: {', '.join(usable[-5:])}" if usable else "no layer before it has a "
                    "grid: explain the input with saliency or integrated gradients instead")
            raise ValueError(f"layer {layer!r} {where} a recurrent layer ({', '.join(recurrent)}): its output is a "
                             f"sequence of steps, not positions on the picture, so it has no map; {hint}")
    grid = find_grid(output, inputs.shape[0], (inputs.shape[-2], inputs.shape[-1]), prefix_tokens(model.net), reshape)
    if isinstance(grid, Grid):
        return grid
    usable = [found.name for found in spatial_layers(model, inputs) if found.reaches][-5:]
    hint = f"layers that would work: {', '.join(usable)}" if usable else "pass reshape= to give it one"
    raise ValueError(f"layer {layer!r} has no spatial grid to draw a map on: {grid}; {hint}")


def recurrent_layers(net: nn.Module) -> list[str]:
    """Names of the recurrent modules (LSTM, GRU, RNN and their cells) and of the modules inside them (found once per
    structure of the model)."""
    return list(model_walk(net).memo(_recurrent_layers, net))


def _recurrent_layers(net: nn.Module) -> list[str]:
    names = [name for name, module in net.named_modules() if name and isinstance(module, nn.RNNBase | nn.RNNCellBase)]
    return [*names, *(f"{name}.{child}" for name in names for child, _ in net.get_submodule(name).named_modules()
                      if child)]


def _attention_parts(net: nn.Module) -> set[str]:
    """Names of the modules inside an attention module (a class named ``*Attention*``)."""
    parts: set[str] = set()
    for name, module in net.named_modules():
        if name and "attention" in type(module).__name__.lower():
            parts.update(f"{name}.{child}" for child, _ in module.named_modules() if child)
    return parts


def _first_tensor(output: object) -> Tensor | None:
    if isinstance(output, Tensor):
        return output if output.is_floating_point() else None
    values = output.values() if isinstance(output, dict) else output if isinstance(output, list | tuple) else []
    for value in values:
        found = _first_tensor(value)
        if found is not None:
            return found
    return None


class LayerChoice:
    """A layer given by name or module, or ``None`` for :func:`last_spatial_layer` (found once per model)."""

    def __init__(self, model: Model, layer: str | nn.Module | None) -> None:
        self._model = model
        if isinstance(layer, list | tuple):
            raise TypeError(f"layer= takes one layer, got {len(layer)} ({', '.join(map(str, layer))}); "
                            "make one method per layer to compare them")
        self._name = None if layer is None else layer_name(model.net, layer)

    def name(self, inputs: Tensor) -> str:
        if self._name is None:
            self._name = last_spatial_layer(self._model, inputs)
        return self._name
