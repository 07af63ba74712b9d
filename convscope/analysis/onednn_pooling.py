"""Max pooling through oneDNN while convscope runs a model without gradients on the CPU: the same values, faster.

PyTorch's own CPU kernel for ``max_pool2d`` on ``[N,C,H,W]`` tensors also records where each maximum was; oneDNN's
(the library behind PyTorch's CPU convolutions, https://github.com/oneapi-src/oneDNN) does not, and pooled 47
pictures of 6×64×64 activations about four times faster here (docs/evaluation.md, "Speed"). Inside
:func:`onednn_max_pooling` a ``max_pool2d`` call on a contiguous float32 CPU tensor that needs no gradient, without
dilation and without NaN (oneDNN does not pass NaN on) goes through oneDNN; any other call is left as it is. A
maximum has no rounding, so the output is equal bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

_POOLS = (F.max_pool2d, torch.max_pool2d)
_NAMES = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


def _plain(value) -> bool:
    return all(v == 1 for v in value) if isinstance(value, list | tuple) else value == 1


def _fits(args: tuple, kwargs: dict) -> bool:
    x = args[0] if args else kwargs.get("input")
    settings = dict(zip(_NAMES, args[1:], strict=False)) | kwargs
    return (type(x) is Tensor and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and x.layout == torch.strided and x.is_contiguous() and not (x.requires_grad and torch.is_grad_enabled())
            and not settings.get("return_indices", False) and _plain(settings.get("dilation", 1))
            and torch._C._get_mkldnn_enabled() and not bool(x.sum().isnan()))  # NaN, or ±∞ both: left as it is


class _OneDnnPooling(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _POOLS and args and _fits(args, kwargs):
            return func(args[0].to_mkldnn(), *args[1:], **kwargs).to_dense()
        return func(*args, **kwargs)


@contextmanager
def onednn_max_pooling() -> Iterator[None]:
    """While inside, fitting ``max_pool2d`` calls run through oneDNN (a no-op where PyTorch was built without it)."""
    if not torch.backends.mkldnn.is_available():
        yield
        return
    with _OneDnnPooling():
        yield


__all__ = ["onednn_max_pooling"]
