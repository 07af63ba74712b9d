"""Exact receptive fields: which input pixels each position of a layer's output can depend on.

One probe forward pass records every tensor operation (at the ATen level, so functional
calls such as ``x + identity`` or ``F.max_pool2d`` count too) and carries, per channel, the
box of input pixels that the output position (0, 0) depends on, and the step between
neighbouring positions. Position ``(y, x)`` of channel ``c`` then sees rows
``[top[c] + y·stride_y, bottom[c] + y·stride_y)`` and likewise for columns (Araujo, Norris
& Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019,
https://distill.pub/2019/computing-receptive-fields/).

Supported along the path: 2-d convolutions (kernel, stride, padding, dilation, groups),
max / average pooling, adaptive pooling to 1×1 or by a whole factor, spatial means and sums,
element-wise operations and activations, batch norm in evaluation mode, residual additions
and other branches that meet again (boxes are united channel by channel), concatenation and
slicing along channels, constant padding, spatial slicing, flatten followed by linear layers
(whose units see the union of everything before). A broadcast of a globally pooled vector
over a map (squeeze-and-excitation) makes every position see the whole input. Transposed
convolutions, upsampling, permutations of the spatial axes, group or layer norm over space
and other operations are reported as unsupported for layers that come after them.
Boxes are bounding boxes: dilated kernels have holes inside them, and a box may reach into
the zero padding outside the input; clipped to the input, a box is exactly the bounding box of
the pixels the position depends on. A position whose window holds nothing but padding (possible
after an explicit one-sided pad) depends on no pixel, yet is given the box of that padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from convscope.hooks import inspection_mode
from convscope.models.layers import get_layer, layer_name
from convscope.reprs import short_repr

aten = torch.ops.aten
INFINITY = math.inf
INSTEAD = ("; the scan still records the layer's features and top activations, and its top patches show the "
           "whole pictures (marked as such) instead of cut-out receptive fields")


@dataclass(frozen=True)
class ReceptiveField:
    """Where each output position of one layer looks, in input pixels (``[H,W]`` of the model input).

    ``top``/``bottom``/``left``/``right`` ``[C]`` bound (bottom/right exclusive) the
    input box of position (0, 0) per channel; ``stride`` is the step between positions.
    ``whole_input`` marks layers whose every unit sees the whole input.
    """

    __repr__ = short_repr

    layer: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    stride: tuple[int, int]
    top: Tensor
    left: Tensor
    bottom: Tensor
    right: Tensor
    whole_input: bool = False

    @property
    def channels(self) -> int:
        """Number of channels (each may have its own field after a concatenation)."""
        return len(self.top)

    def size(self, channel: int = 0) -> tuple[int, int]:
        """Height and width of the box of ``channel`` (the same at every position)."""
        top, left, bottom, right = self.box(channel, 0, 0)
        return bottom - top, right - left

    def box(self, channel: int, y: int, x: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` in input pixels, bottom/right exclusive; may exceed the input."""
        return tuple(self.boxes(torch.tensor([channel]), torch.tensor([y]), torch.tensor([x]))[0].tolist())

    def boxes(self, channels: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
        """Boxes ``[n,4]`` (top, left, bottom, right) for ``n`` (channel, y, x) triples."""
        channels, ys, xs = (torch.as_tensor(t, dtype=torch.long).reshape(-1).cpu() for t in (channels, ys, xs))
        if len(channels) and not (0 <= int(channels.min()) and int(channels.max()) < self.channels):
            raise ValueError(f"channel out of range: layer {self.layer!r} has {self.channels} channels")
        if self.whole_input:
            height, width = self.input_size
            return torch.tensor([0, 0, height, width]).expand(len(channels), 4).clone()
        sy, sx = self.stride
        return torch.stack([self.top[channels] + ys * sy, self.left[channels] + xs * sx,
                            self.bottom[channels] + ys * sy, self.right[channels] + xs * sx], dim=1)

    @classmethod
    def whole(cls, layer: str, input_size: tuple[int, int], output_size: tuple[int, int], channels: int
              ) -> ReceptiveField:
        """A stand-in that gives every unit the whole input: what top patches show when the field is unknown."""
        zeros = torch.zeros(channels, dtype=torch.long)
        return cls(layer, input_size, output_size, (1, 1), zeros, zeros, zeros + input_size[0], zeros + input_size[1],
                   whole_input=True)

    def describe(self, channel: int = 0) -> str:
        """One line: the field's size and stride for ``channel``, or that it sees the whole input."""
        if self.whole_input:
            return f"{self.layer}: every unit sees the whole {self.input_size[0]}×{self.input_size[1]} input"
        height, width = self.size(channel)
        return (f"{self.layer}: receptive field {height}×{width} px, stride {self.stride[0]}×{self.stride[1]}, "
                f"output {self.output_size[0]}×{self.output_size[1]}")

    def to_dict(self) -> dict:
        """A JSON-able dictionary (stored with a scan)."""
        return {"layer": self.layer, "input_size": list(self.input_size), "output_size": list(self.output_size),
                "stride": list(self.stride), "top": self.top.tolist(), "left": self.left.tolist(),
                "bottom": self.bottom.tolist(), "right": self.right.tolist(), "whole_input": self.whole_input}

    @classmethod
    def from_dict(cls, data: dict) -> ReceptiveField:
        """The field from :meth:`to_dict`'s dictionary."""
        top, left, bottom, right = (torch.tensor(data[k], dtype=torch.long) for k in ("top", "left", "bottom", "right"))
        return cls(data["layer"], tuple(data["input_size"]), tuple(data["output_size"]), tuple(data["stride"]),
                   top, left, bottom, right, whole_input=bool(data["whole_input"]))


def receptive_fields(net: nn.Module, layers: Sequence[str | nn.Module], example: Tensor) -> dict[str, ReceptiveField]:
    """The exact receptive field of each of ``layers``, from one forward pass of ``example`` ``[1,C,H,W]``.

    The model is left as it was found. Raises ValueError for a layer reached through an
    operation this cannot follow, naming that operation.
    """
    if not isinstance(example, Tensor) or example.dim() != 4:
        raise ValueError(f"receptive fields need an example input [1,C,H,W], got "
                         f"{tuple(example.shape) if isinstance(example, Tensor) else type(example).__name__}")
    names = [layer_name(net, layer) for layer in layers]
    tracker = _Tracker()
    found: dict[str, _Record] = {}
    handles = []

    def recorder(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(tensor, Tensor):
                found[name] = (tracker.lookup(tensor), tuple(tensor.shape))

        return hook

    example = example[:1].detach()
    with inspection_mode(net), torch.inference_mode():
        try:
            for name in names:
                handles.append(get_layer(net, name).register_forward_hook(recorder(name)))
            tracker.start(example)
            with tracker:
                net(example)
        finally:
            for handle in handles:
                handle.remove()
    input_size = (int(example.shape[-2]), int(example.shape[-1]))
    return {name: _field(name, found.get(name), input_size) for name in names}


def _field(name: str, record: _Record | None, input_size: tuple[int, int]) -> ReceptiveField:
    if record is None:
        raise ValueError(f"layer {name!r} produced no tensor in the forward pass (is it used by forward?)")
    geometry, shape = record
    if geometry is None:
        raise ValueError(f"the output of layer {name!r} does not depend on the input")
    if isinstance(geometry, _Unsupported):
        raise ValueError(f"cannot compute the receptive field of {name!r}: it is reached through {geometry.op}, "
                         "which convscope does not model (see convscope.scan.receptive_field for what is supported)"
                         + INSTEAD)
    output_size = (int(shape[2]), int(shape[3])) if len(shape) == 4 else (1, 1)
    channels = int(shape[1]) if len(shape) >= 2 else 1
    if geometry.lo.shape[0] != channels:
        if geometry.lo.shape[0] != 1:
            raise ValueError(f"cannot compute the receptive field of {name!r}: its {channels} channels do not "
                             "match the tracked ones" + INSTEAD)
        geometry = _expand_channels(geometry, channels)
    height, width = input_size
    whole = geometry.whole or bool(((geometry.lo[:, 0] <= 0) & (geometry.lo[:, 1] <= 0)
                                    & (geometry.hi[:, 0] >= height) & (geometry.hi[:, 1] >= width)).all()
                                   and output_size == (1, 1))
    lo = torch.where(torch.isfinite(geometry.lo), geometry.lo, 0).long()
    hi = torch.where(torch.isfinite(geometry.hi), geometry.hi, 0).long()
    return ReceptiveField(name, input_size, output_size, geometry.jump, lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1],
                          whole_input=whole)


@dataclass(frozen=True)
class _Geometry:
    """Per channel the box ``[lo, hi)`` ``[C,2]`` (y, x) of position (0, 0), and the step between positions."""

    lo: Tensor
    hi: Tensor
    jump: tuple[int, int]
    whole: bool = False


@dataclass(frozen=True)
class _Unsupported:
    op: str


_Record = tuple[_Geometry | _Unsupported | None, tuple[int, ...]]  # a layer output's geometry and shape


class _Tracker(TorchDispatchMode):
    """Follows every ATen operation, giving each output tensor the geometry of its inputs."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # nothing here is compiled; opting out spares a multi-second import of torch._dynamo

    def __init__(self) -> None:
        super().__init__()
        self.known: dict[int, tuple[Tensor, _Geometry | _Unsupported]] = {}
        self.input_size = (1, 1)

    def start(self, example: Tensor) -> None:
        channels = example.shape[1]
        self.input_size = (int(example.shape[-2]), int(example.shape[-1]))
        self.known = {id(example): (example, _Geometry(torch.zeros(channels, 2, dtype=torch.float64),
                                                       torch.ones(channels, 2, dtype=torch.float64), (1, 1)))}

    def lookup(self, tensor: Tensor) -> _Geometry | _Unsupported | None:
        entry = self.known.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat_in, _ = tree_flatten((args, kwargs))
        tracked = [(t, self.lookup(t)) for t in flat_in if isinstance(t, Tensor) and self.lookup(t) is not None]
        if not tracked:
            return out
        unsupported = next((g for _, g in tracked if isinstance(g, _Unsupported)), None)
        if unsupported is not None:
            geometry = unsupported
        else:
            try:
                geometry = _propagate(func, args, kwargs, tracked, out, self.input_size)
            except _NotModelled:
                geometry = _Unsupported(str(func))
        outputs, _ = tree_flatten(out)
        if func in _SPLITS and isinstance(geometry, list):
            for tensor, part in zip(outputs, geometry, strict=True):
                self.known[id(tensor)] = (tensor, part)
        else:
            for tensor in outputs:
                if isinstance(tensor, Tensor) and tensor.is_floating_point():
                    self.known[id(tensor)] = (tensor, geometry)
        return out


class _NotModelled(Exception):
    pass


def _existing(*names: str) -> set:
    """The ATen overloads among ``names`` ('op.overload') that this build of torch has."""
    found = set()
    for name in names:
        op, _, overload = name.partition(".")
        packet = getattr(aten, op, None)
        if packet is not None and hasattr(packet, overload or "default"):
            found.add(getattr(packet, overload or "default"))
    return found


_GENERAL_CONVOLUTIONS = _existing("convolution", "_convolution")
_CONVOLUTIONS = _GENERAL_CONVOLUTIONS | _existing("conv2d", "conv2d.padding")
_POOLS = {aten.max_pool2d_with_indices.default, aten.max_pool2d.default, aten.avg_pool2d.default}
_ADAPTIVE = _existing("_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d")
_PER_CHANNEL = _existing("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm",
                         "_native_batch_norm_legit", "cudnn_batch_norm", "miopen_batch_norm",
                         "_native_batch_norm_legit_functional")
_ELEMENTWISE = _existing("_to_copy", "detach", "alias", "lift_fresh", "native_dropout", "hardswish", "hardswish_",
                         "hardsigmoid", "hardsigmoid_", "leaky_relu", "leaky_relu_", "elu", "elu_", "mish", "mish_",
                         "softplus", "_prelu_kernel", "expand", "clone", "dropout", "relu6", "silu_", "gelu_")
_REDUCTIONS = _existing("mean.dim", "sum.dim_IntList", "amax", "amin")
_MIXING = _existing("addmm", "mm", "bmm", "linear", "matmul")
_VIEWS = _existing("view", "_unsafe_view", "reshape", "flatten.using_ints")
_UNIT_DIMENSIONS = _existing("unsqueeze", "squeeze", "squeeze.dim", "squeeze.dims", "view", "_unsafe_view",
                             "reshape")
_SPLITS = _existing("split.Tensor", "split_with_sizes", "chunk")


def _propagate(func, args, kwargs, tracked, out, input_size):
    first_tensor, first = tracked[0]
    if func in _CONVOLUTIONS:
        if len(tracked) > 1 or tracked[0][0] is not args[0]:
            raise _NotModelled
        return _convolution(func, first, *args[1:])
    if func in _POOLS:
        kernel = _pair(args[1])
        stride = _pair(args[2]) if len(args) > 2 and args[2] else kernel
        padding = _pair(args[3]) if len(args) > 3 else (0, 0)
        dilation = _pair(args[4]) if func != aten.avg_pool2d.default and len(args) > 4 else (1, 1)
        channels = first.lo.shape[0]
        return _window(first, kernel, stride, padding, dilation, channels, channels)
    if func in _ADAPTIVE:
        return _adaptive(first, tuple(first_tensor.shape[-2:]), _pair(args[1]))
    if func in _PER_CHANNEL:
        return first
    if func in _REDUCTIONS:
        return _reduce(first, first_tensor, args)
    if func in _MIXING:
        return _mix(tracked)
    if func in _VIEWS:
        if _keeps_layout(first_tensor.shape, out.shape) or _same_vector(first_tensor.shape, out.shape):
            return first
        return _mix(tracked)
    if func in _UNIT_DIMENSIONS:
        if _keeps_layout(first_tensor.shape, out.shape) or _same_vector(first_tensor.shape, out.shape):
            return first
        raise _NotModelled
    if func == aten.cat.default:
        return _cat(args[0], args[1] if len(args) > 1 else kwargs.get("dim", 0), tracked, out)
    if func == aten.slice.Tensor:
        return _slice(first, first_tensor, *args[1:])
    if func == aten.constant_pad_nd.default or (func == aten.pad.default and _pad_mode(args, kwargs) == "constant"):
        return _pad(first, args[1])
    if func in _SPLITS:
        return _split(first, first_tensor, out, args)
    if torch.Tag.pointwise in func.tags or func in _ELEMENTWISE:
        return _broadcast(tracked, out, input_size)
    raise _NotModelled


def _convolution(func, geometry: _Geometry, weight: Tensor, bias=None, stride=1, padding=0, dilation=1, *rest):
    if func in _GENERAL_CONVOLUTIONS:  # (…, transposed, output_padding, groups)
        transposed, _, groups = rest[:3]
        if transposed:
            raise _NotModelled
    else:
        groups = rest[0] if rest else 1
    if weight.dim() != 4:
        raise _NotModelled
    kernel = tuple(weight.shape[-2:])
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # 'same': PyTorch puts the smaller half of the padding first
            padding = tuple(d * (k - 1) // 2 for d, k in zip(_pair(dilation), kernel, strict=True))
    return _window(geometry, kernel, stride, padding, dilation, groups, weight.shape[0])


def _pair(value) -> tuple[int, int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise _NotModelled
    return int(values[0]), int(values[1])


def _window(geometry: _Geometry, kernel, stride, padding, dilation, groups: int, out_channels: int) -> _Geometry:
    """A sliding window: each output unit unites the boxes of ``kernel`` input units (per group)."""
    if geometry.whole:
        return _whole(out_channels)
    kernel, stride, padding, dilation = (torch.tensor(_pair(v), dtype=torch.float64)
                                         for v in (kernel, stride, padding, dilation))
    jump = torch.tensor(geometry.jump, dtype=torch.float64)
    in_channels = geometry.lo.shape[0]
    lo = geometry.lo.reshape(groups, in_channels // groups, 2).amin(1)
    hi = geometry.hi.reshape(groups, in_channels // groups, 2).amax(1)
    lo = (lo - padding * jump).repeat_interleave(out_channels // groups, dim=0)
    hi = (hi + ((kernel - 1) * dilation - padding) * jump).repeat_interleave(out_channels // groups, dim=0)
    jump_y, jump_x = (jump * stride).tolist()
    return _Geometry(lo, hi, (int(jump_y), int(jump_x)))


def _adaptive(geometry: _Geometry, size: tuple[int, int], output: tuple[int, int]) -> _Geometry:
    if output == size:
        return geometry
    if output == (1, 1):
        return _pooled(geometry, size)
    if size[0] % output[0] or size[1] % output[1]:
        raise _NotModelled  # uneven adaptive bins do not form a regular grid
    kernel = (size[0] // output[0], size[1] // output[1])
    channels = geometry.lo.shape[0]
    return _window(geometry, kernel, kernel, (0, 0), (1, 1), channels, channels)


def _pooled(geometry: _Geometry, size: Sequence[int]) -> _Geometry:
    """All positions of a ``size`` map united into one (global pooling)."""
    if geometry.whole:
        return geometry
    span = torch.tensor([(size[0] - 1) * geometry.jump[0], (size[1] - 1) * geometry.jump[1]], dtype=torch.float64)
    return _Geometry(geometry.lo, geometry.hi + span, (1, 1))


def _whole(channels: int) -> _Geometry:
    return _Geometry(torch.full((channels, 2), -INFINITY, dtype=torch.float64),
                     torch.full((channels, 2), INFINITY, dtype=torch.float64), (1, 1), whole=True)


def _reduce(geometry: _Geometry, tensor: Tensor, args) -> _Geometry:
    dims = args[1] if len(args) > 1 else list(range(tensor.dim()))
    dims = {d % tensor.dim() for d in ([dims] if isinstance(dims, int) else dims)}
    if tensor.dim() != 4 or dims - {2, 3} or 1 in dims:
        raise _NotModelled
    if dims == {2, 3}:
        return _pooled(geometry, tensor.shape[-2:])
    raise _NotModelled


def _mix(tracked) -> _Geometry:
    """Every output unit depends on every input unit (linear layers after flatten)."""
    lows, highs = [], []
    for tensor, geometry in tracked:
        if geometry.whole:
            return _whole(1)
        pooled = _pooled(geometry, tensor.shape[-2:]) if tensor.dim() == 4 else geometry
        lows.append(pooled.lo.amin(0))
        highs.append(pooled.hi.amax(0))
    lo, hi = torch.stack(lows).amin(0), torch.stack(highs).amax(0)
    return _Geometry(lo[None], hi[None], (1, 1))


def _same_vector(before: Sequence[int], after: Sequence[int]) -> bool:
    """``[B,C]`` ↔ ``[B,C,1,1]``: one position either way."""
    return list(before[:2]) == list(after[:2]) and all(s == 1 for s in list(before[2:]) + list(after[2:]))


def _pad_mode(args, kwargs) -> str:
    return args[2] if len(args) > 2 else kwargs.get("mode", "constant")


def _keeps_layout(before: Sequence[int], after: Sequence[int]) -> bool:
    return len(before) == len(after) and list(before[1:]) == list(after[1:])


def _channel_count(tensor: Tensor) -> int:
    return tensor.shape[1] if tensor.dim() >= 2 else 1


def _expand_channels(geometry: _Geometry, channels: int) -> _Geometry:
    have = geometry.lo.shape[0]
    if have == channels:
        return geometry
    if have == 1:
        return _Geometry(geometry.lo.expand(channels, 2), geometry.hi.expand(channels, 2), geometry.jump,
                         geometry.whole)
    raise _NotModelled


def _broadcast(tracked, out: Tensor, input_size: tuple[int, int]) -> _Geometry:
    """Element-wise operations: each output unit unites the boxes of the input units it reads."""
    if not isinstance(out, Tensor) or out.dim() not in (2, 4):
        raise _NotModelled
    channels = _channel_count(out)
    spatial = tuple(out.shape[-2:]) if out.dim() == 4 else (1, 1)
    parts = []
    for tensor, geometry in tracked:
        if tensor.dim() not in (2, 4):
            raise _NotModelled
        geometry = _expand_channels(geometry, channels)
        size = tuple(tensor.shape[-2:]) if tensor.dim() == 4 else (1, 1)
        if size != spatial:
            if size != (1, 1):
                raise _NotModelled
            if not geometry.whole and not _covers(geometry, input_size):
                raise _NotModelled  # a fixed box added to a moving one is not a sliding window
            geometry = _whole(channels)
        parts.append(geometry)
    if any(p.whole for p in parts):
        return _whole(channels)
    jumps = {p.jump for p in parts}
    if spatial != (1, 1) and len(jumps) > 1:
        raise _NotModelled
    lo = torch.stack([p.lo for p in parts]).amin(0)
    hi = torch.stack([p.hi for p in parts]).amax(0)
    return _Geometry(lo, hi, parts[0].jump)


def _covers(geometry: _Geometry, input_size: tuple[int, int]) -> bool:
    return bool((geometry.lo <= 0).all() and (geometry.hi[:, 0] >= input_size[0]).all()
                and (geometry.hi[:, 1] >= input_size[1]).all())


def _cat(tensors, dim: int, tracked, out: Tensor) -> _Geometry:
    geometries = {id(t): g for t, g in tracked}
    dim = dim % out.dim()
    parts = []
    for tensor in tensors:
        geometry = geometries.get(id(tensor))
        if geometry is None:  # a constant: depends on no input pixel
            channels = _channel_count(tensor) if dim == 1 else _channel_count(out)
            geometry = _Geometry(torch.full((channels, 2), INFINITY, dtype=torch.float64),
                                 torch.full((channels, 2), -INFINITY, dtype=torch.float64), tracked[0][1].jump)
        parts.append(geometry)
    if any(p.whole for p in parts):
        return _whole(_channel_count(out))
    if len({p.jump for p in parts if torch.isfinite(p.lo).any()}) > 1:
        raise _NotModelled
    jump = next((p.jump for p in parts if torch.isfinite(p.lo).any()), parts[0].jump)
    if dim == 1:
        return _Geometry(torch.cat([p.lo for p in parts]), torch.cat([p.hi for p in parts]), jump)
    if dim == 0:
        return _Geometry(torch.stack([p.lo for p in parts]).amin(0), torch.stack([p.hi for p in parts]).amax(0), jump)
    raise _NotModelled


def _slice(geometry: _Geometry, tensor: Tensor, dim: int = 0, start=None, end=None, step: int = 1) -> _Geometry:
    dim = dim % tensor.dim()
    size = tensor.shape[dim]
    first = 0 if start is None else (start + size if start < 0 else min(start, size))
    if dim == 0:
        return geometry
    if dim == 1:
        stop = size if end is None else (end + size if end < 0 else min(end, size))
        return _Geometry(geometry.lo[first:stop:step], geometry.hi[first:stop:step], geometry.jump, geometry.whole)
    if tensor.dim() != 4 or geometry.whole:
        if geometry.whole:
            return geometry
        raise _NotModelled
    axis = dim - 2
    shift = torch.zeros(2, dtype=torch.float64)
    shift[axis] = first * geometry.jump[axis]
    jump = (geometry.jump[0] * step, geometry.jump[1]) if axis == 0 else (geometry.jump[0], geometry.jump[1] * step)
    return _Geometry(geometry.lo + shift, geometry.hi + shift, jump)


def _pad(geometry: _Geometry, pad: Sequence[int]) -> _Geometry:
    if geometry.whole:
        return geometry
    pad = list(pad) + [0] * (4 - len(pad))
    if any(pad[4:]):
        raise _NotModelled
    left, _, top, _ = pad[:4]
    shift = torch.tensor([top * geometry.jump[0], left * geometry.jump[1]], dtype=torch.float64)
    return _Geometry(geometry.lo - shift, geometry.hi - shift, geometry.jump)


def _split(geometry: _Geometry, tensor: Tensor, out, args) -> list[_Geometry]:
    dim = args[2] if len(args) > 2 else 0
    if dim % tensor.dim() != 1:
        raise _NotModelled
    parts, start = [], 0
    for piece in out:
        count = piece.shape[1]
        parts.append(_Geometry(geometry.lo[start:start + count], geometry.hi[start:start + count], geometry.jump,
                               geometry.whole))
        start += count
    return parts

