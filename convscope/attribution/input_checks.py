"""What an attribution method's inputs must be beyond their shape: the model's channels, finite values, and
enough pixels for a layer map to mean something.

A map of a layer that shrinks its input by a stride ``s`` needs inputs of at least ``2·s`` pixels a
side: smaller inputs give a map made of padding (one cell, or cells that all see the same pixels).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

from convscope.models.model import Model

_STRIDES: weakref.WeakKeyDictionary[nn.Module, dict[str, int | None]] = weakref.WeakKeyDictionary()


def check_channels_and_values(inputs: Tensor, model: Model) -> None:
    """A ``ValueError`` when ``inputs`` have another number of channels than the model's first convolution
    reads, or hold NaN or infinite values."""
    expected = input_channels(model.net)
    if expected is not None and inputs.shape[1] != expected:
        raise ValueError(f"inputs have {inputs.shape[1]} channel(s) but {model.name} reads {expected}; "
                         "model.prepare(pictures) converts greyscale or colour pictures to what the model reads")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs hold NaN or infinite values")


def input_channels(net: nn.Module) -> int | None:
    """The channels the first convolution reads (``None`` when the model has none)."""
    first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    return first.in_channels if first is not None else None


def check_map_size(model: Model, layer: str, inputs: Tensor, title: str) -> None:
    """A ``ValueError`` giving the minimum size when ``inputs`` are too small for a map at ``layer``.

    Only inputs smaller than the model's own input size are looked at (one forward pass at that
    size, once per model and layer, finds the layer's stride).
    """
    height, width = inputs.shape[-2:]
    native = model.preprocess.input_size
    if height >= native[0] and width >= native[1]:
        return
    stride = layer_stride(model, layer)
    if stride is None:
        return
    minimum = 2 * stride
    if height < minimum or width < minimum:
        raise ValueError(f"{title} at {layer} needs inputs of at least {minimum}×{minimum} pixels ({layer} is "
                         f"{stride} times smaller than the input, and a map needs 2×2 cells), got {height}×{width}; "
                         f"resize the pictures (model.prepare resizes to {native[0]}×{native[1]})")


def layer_stride(model: Model, layer: str) -> int | None:
    """How many input pixels one cell of ``layer``'s map spans, at the model's own input size."""
    known = _STRIDES.setdefault(model.net, {})
    if layer not in known:
        from convscope.attribution.base import forward

        height, width = model.preprocess.input_size
        example = torch.zeros(1, input_channels(model.net) or model.preprocess.channels, height, width,
                              device=model.device, dtype=next(model.net.parameters()).dtype)
        _, activations = forward(model, example, [layer])
        output = activations[layer]
        known[layer] = max(1, round(height / output.shape[-2])) if output.dim() == 4 else None
    return known[layer]
