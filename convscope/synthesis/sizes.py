"""Picture sizes checked against the machine before a picture is made (a mistyped --size of 200000 is
refused in one line, not by the allocator after the model has loaded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from convscope.memory import check_fits

if TYPE_CHECKING:
    from convscope.models.model import Model

# bytes per picture value: the picture, its parameterisation, gradient and optimiser state, and at least the first
# layers' activations (a lower bound: a size refused here cannot fit, one accepted may still be too large)
BYTES_PER_VALUE = 4 * 16


def check_picture_memory(count: int, height: int, width: int, *, device: torch.device | str | None = None,
                         hint: str = "give a smaller size") -> None:
    """A one-line ``ValueError`` when ``count`` pictures of ``height``×``width`` cannot fit in memory."""
    check_fits(BYTES_PER_VALUE * 3 * count * height * width,
               f"{count} picture{'s' if count != 1 else ''} of {height}×{width} pixels", hint, device)


def layer_shape(model: Model, layer: str | None, size: tuple[int, int]) -> tuple[int, ...]:
    """The shape of ``layer``'s output (the model's output when ``None``) for one grey picture of ``size``
    (``[C,h,w]`` or ``[C]``); a ``ValueError`` when the model cannot read pictures of that size."""
    from convscope.hooks import capture, inspection_mode
    from convscope.synthesis.loop import forward_until_done, stop_after

    picture = torch.full((1, model.preprocess.channels, *size), 0.5, device=model.device)
    layers = [layer] if layer is not None else []
    with inspection_mode(model.net), capture(model.net, layers, detach=True) as store, \
            stop_after(model.net, layers), torch.no_grad():
        try:
            output = forward_until_done(model.net, model.preprocess.normalize(picture))
        except RuntimeError as error:
            height, width = model.preprocess.input_size
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            where = f"up to layer {layer!r}" if layer is not None else "to its output"
            raise ValueError(f"{model.name} cannot read {size[0]}×{size[1]}-pixel pictures {where} ({first}); its "
                             f"input size is {height}×{width}") from error
    if layer is not None:
        return tuple(store.activation(layer).shape[1:])
    assert output is not None, "a pass with no layer to stop after runs to its end"
    return tuple(output.shape[1:])


def fixed_input_size(model: Model, layer: str | None = None) -> tuple[int, int] | None:
    """The model's input size when it reads pictures of no other size up to ``layer`` (a flatten before it, or
    before its output when ``None``), else ``None``; asked with a grey picture a little larger than the input."""
    height, width = model.preprocess.input_size
    try:
        layer_shape(model, layer, (height + 8, width + 8))
    except ValueError:
        return height, width
    return None
