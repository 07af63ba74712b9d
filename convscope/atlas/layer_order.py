"""The chosen layers in the order the network runs them (links go from each to the next)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from convscope.hooks import inspection_mode
from convscope.models.layers import get_layer
from convscope.models.model import Model
from convscope.synthesis.loop import forward_until_done, stop_after


def forward_order(model: Model, layers: Sequence[str]) -> list[str]:
    """``layers`` sorted by when they first run for one grey picture of the model's input size; a one-line
    ``ValueError`` for a layer that does not run."""
    seen: list[str] = []

    def hook_for(name: str):
        def hook(module: object, inputs: object, output: object) -> None:
            if name not in seen:
                seen.append(name)

        return hook

    picture = torch.full((1, model.preprocess.channels, *model.preprocess.input_size), 0.5, device=model.device)
    with inspection_mode(model.net), torch.no_grad():
        handles = [get_layer(model.net, name).register_forward_hook(hook_for(name)) for name in layers]
        try:
            with stop_after(model.net, list(layers)):  # its hooks run after those above
                forward_until_done(model.net, model.preprocess.normalize(picture))
        finally:
            for handle in handles:
                handle.remove()
    missing = [name for name in layers if name not in seen]
    if missing:
        raise ValueError(f"layer {missing[0]!r} does not run in {model.name}'s forward pass: choose layers that do "
                         "(`convscope layers` lists them)")
    return seen
