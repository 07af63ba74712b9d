"""Captum's ``additional_forward_args=``: more arguments for the model's forward, after the input.

While a method runs, :func:`passing` makes ``net(x)`` call ``net.forward(x, *arguments)``. A tensor
argument whose first dimension is the batch goes with its images: the rows of ``x`` come from the
images named by :func:`rows` around the pass that builds them (copies, path points, the input and
its baseline); a pass over the batch itself, or over its first image alone (the layer search), needs
none. Other arguments are passed as they are, as in Captum.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

_ROWS: ContextVar[Tensor | None] = ContextVar("convscope_forward_rows", default=None)
_PASSING: ContextVar[bool] = ContextVar("convscope_passing_arguments", default=False)


@contextmanager
def rows(images: Tensor) -> Iterator[None]:
    """The forward passes inside are over copies of ``images`` (one index per row)."""
    token = _ROWS.set(images)
    try:
        yield
    finally:
        _ROWS.reset(token)


def current_rows() -> Tensor | None:
    """The images of the rows being passed, when a method said so."""
    return _ROWS.get()


def per_image_arguments() -> bool:
    """Whether the model is being given ``additional_forward_args`` (its output may then differ per image)."""
    return _PASSING.get()


def as_arguments(value: object) -> tuple:
    """Captum's ``additional_forward_args`` as a tuple (one value is one argument)."""
    if value is None:
        return ()
    return tuple(value) if isinstance(value, tuple) else (value,)


@contextmanager
def passing(net: nn.Module, arguments: tuple, batch: int, title: str) -> Iterator[None]:
    """``net(x)`` calls ``net.forward(x, *arguments)`` inside, tensors of ``batch`` rows taken at the rows of ``x``."""
    if not arguments:
        yield
        return
    own = net.__dict__.get("forward")
    original = net.forward

    def forward(x: Tensor, *more: object, **named: object) -> object:
        images = _ROWS.get()
        if images is None:
            if x.shape[0] not in (batch, 1):
                raise ValueError(f"{title} ran the model on {x.shape[0]} rows without saying which images they "
                                 "come from: it cannot pass additional_forward_args=")
            images = torch.arange(x.shape[0])
        chosen = tuple(a[images.to(a.device)] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch
                       else a for a in arguments)
        return original(x, *chosen, *more, **named)

    net.forward = forward
    token = _PASSING.set(True)
    try:
        yield
    finally:
        _PASSING.reset(token)
        if own is None:
            del net.forward
        else:
            net.forward = own
