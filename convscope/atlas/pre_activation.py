"""Optimising a rectifier's input instead of its output, as Lucid does (``mixed4a_pre_relu``,
https://distill.pub/2017/feature-visualization/): a channel that is zero everywhere on the starting picture
passes no gradient through its ReLU, and its visualisation would stay grey; its input has a gradient
everywhere, and its largest values are the same pictures' largest outputs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from convscope.models.layers import get_layer

RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Threshold)


def is_rectifier(net: nn.Module, layer: str) -> bool:
    """Whether ``layer`` is a rectifying activation module (its output has zero gradient where it is cut off)."""
    return isinstance(get_layer(net, layer), RECTIFIERS)


@contextmanager
def pre_activation(net: nn.Module, layer: str) -> Iterator[bool]:
    """For the duration, a rectifier at ``layer`` passes its input on unchanged (yields whether it was one).

    Only for a private copy of a model (:func:`~convscope.atlas.working_copy.working_copy`): the module's
    ``forward`` is swapped and put back.
    """
    module = get_layer(net, layer)
    if not isinstance(module, RECTIFIERS):
        yield False
        return
    module.forward = lambda input: input  # type: ignore[method-assign]
    try:
        yield True
    finally:
        del module.forward
