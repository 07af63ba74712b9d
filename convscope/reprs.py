"""Short ``repr()`` of results for a plain REPL: shapes instead of tensors, a few items of long lists.

A result's class says ``__repr__ = short_repr`` (a dataclass keeps a ``__repr__`` defined in its body), and prints
as ``Filters(layer='conv1', weight=Tensor[32×3×3×3] float32, groups=1, kind='spatial')``: every field, each in at
most a few dozen characters. Jupyter shows the same results richly (``_repr_png_``, ``_repr_html_``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

ITEMS = 3  # items of a list or mapping shown before "…"
TEXT = 60  # characters of a text shown before "…"


def short_repr(self: object) -> str:
    """``Name(field=value, …)`` with every field shortened by :func:`short`."""
    names = [f.name for f in dataclasses.fields(self) if f.repr] if dataclasses.is_dataclass(self) else \
        [k for k in vars(self) if not k.startswith("_")]
    return f"{type(self).__name__}(" + ", ".join(f"{n}={short(getattr(self, n))}" for n in names) + ")"


def short(value: object, depth: int = 0) -> str:
    """One value in a few dozen characters: a tensor as its shape and type, a long list as its first items."""
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return f"tensor({value.item():.4g})" if value.is_floating_point() else f"tensor({value.item()})"
        kind = str(value.dtype).removeprefix("torch.")
        where = "" if value.device.type == "cpu" else f" {value.device}"
        return f"Tensor[{'×'.join(map(str, value.shape)) or '0'}] {kind}{where}"
    if isinstance(value, nn.Module):
        return f"{type(value).__name__}(…)"
    if isinstance(value, str):
        return repr(value) if len(value) <= TEXT else repr(value[:TEXT]) + "…"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Path | bool | int | None | torch.device | torch.dtype):
        return repr(value) if not isinstance(value, Path) else repr(str(value))
    if depth >= 2:
        return f"{type(value).__name__}(…)"
    if isinstance(value, Mapping):
        shown = [f"{short(k, depth + 1)}: {short(v, depth + 1)}" for k, v in list(value.items())[:ITEMS]]
        more = f", … ({len(value)} keys)" if len(value) > ITEMS else ""
        return "{" + ", ".join(shown) + more + "}"
    if isinstance(value, list | tuple):
        shown = [short(v, depth + 1) for v in value[:ITEMS]]
        more = f", … ({len(value)} items)" if len(value) > ITEMS else ""
        if isinstance(value, list):
            return "[" + ", ".join(shown) + more + "]"
        return "(" + ", ".join(shown) + ("," if len(value) == 1 else "") + more + ")"
    text = repr(value)
    return text if len(text) <= TEXT else f"{type(value).__name__}(…)"
