"""Mixed precision for the atlas's optimisation loop, on request (``convscope atlas --precision bfloat16``).

The model's copy computes in bfloat16; the pictures, their Fourier parameters, the transforms, Adam and the objective
stay in float32, as in mixed-precision training (Micikevicius et al. 2018, https://arxiv.org/abs/1710.03740;
bfloat16: Kalamkar et al. 2019, https://arxiv.org/abs/1905.12322). Each step's gradient is rounded to bfloat16's 8
significant bits on its way through the model, so the pictures differ from float32's in their details; the values
the atlas reports (each picture's mean activation) are measured in float32 afterwards. Worth it where bfloat16 is
native: CPUs with AVX-512-BF16 or AMX, and GPUs; elsewhere it is slower.

On the CPU, oneDNN's bfloat16 gradient of a strided grouped (depthwise) convolution is 15–40 times slower than its
float32 one (a reference implementation; oneDNN 3.12 on an AVX-512-BF16 CPU), so on the CPU those convolutions keep
float32.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from convscope.models.model import Model

PRECISIONS = ("float32", "bfloat16")

_copies: weakref.WeakKeyDictionary[nn.Module, Model] = weakref.WeakKeyDictionary()


def in_precision(model: Model, precision: str) -> Model:
    """``model`` (a :func:`~convscope.atlas.working_copy.working_copy`) computing in ``precision``: itself for
    float32, a bfloat16 copy (made once per model) for bfloat16."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return model
    if model.net not in _copies:
        _copies[model.net] = dataclasses.replace(model, net=_bfloat16_copy(model.net, model.device))
    return _copies[model.net]


def _bfloat16_copy(net: nn.Module, device: torch.device) -> nn.Module:
    lowered = copy.deepcopy(net).to(torch.bfloat16)
    lowered.register_forward_pre_hook(_inputs_to(torch.bfloat16))
    if device.type == "cpu":
        for module in lowered.modules():
            if isinstance(module, nn.Conv2d) and module.groups > 1 and max(module.stride) > 1:
                module.float()
                module.register_forward_pre_hook(_inputs_to(torch.float32))
                module.register_forward_hook(_back_to_bfloat16)
    return lowered


def _inputs_to(dtype: torch.dtype) -> Callable[[nn.Module, tuple[object, ...]], tuple[object, ...]]:
    """A forward pre-hook casting a module's floating-point inputs to ``dtype``."""
    def hook(module: nn.Module, inputs: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(x.to(dtype) if isinstance(x, Tensor) and x.is_floating_point() else x for x in inputs)

    return hook


def _back_to_bfloat16(module: nn.Module, inputs: tuple[object, ...], output: Tensor) -> Tensor:
    return output.to(torch.bfloat16)
