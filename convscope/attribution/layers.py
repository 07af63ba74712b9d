"""Choosing the layer a class-activation-map method looks at."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.hooks import inspection_mode
from convscope.models.layers import layer_name
from convscope.models.model import Model


def last_spatial_layer(model: Model, inputs: Tensor) -> str:
    """The last layer (in execution order) whose output is a feature map ``[B,C,h,w]`` with ``h, w > 1``.

    For EfficientNet-Lite this is ``bn2`` (the last conv block, after its ReLU6); for a
    ResNet, ``layer4``. A module's hook fires after its children, so a block wins
    over the last layer inside it.
    """
    order: list[str] = []
    names = {module: name for name, module in model.net.named_modules() if name}

    def hook(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, Tensor) and output.dim() == 4 and min(output.shape[-2:]) > 1:
            order.append(names[module])

    handles = [module.register_forward_hook(hook) for module in names]
    try:
        with inspection_mode(model.net), torch.no_grad():
            model.net(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not order:
        raise ValueError("no layer of this model produces a feature map [B,C,h,w] larger than 1×1; "
                         "give layer= the name of a convolutional layer")
    return order[-1]


class LayerChoice:
    """A layer given by name or module, or ``None`` for :func:`last_spatial_layer` (found once per model)."""

    def __init__(self, model: Model, layer: str | nn.Module | None) -> None:
        self._model = model
        self._name = None if layer is None else layer_name(model.net, layer)

    def name(self, inputs: Tensor) -> str:
        if self._name is None:
            self._name = last_spatial_layer(self._model, inputs)
        return self._name
