"""Where a layer's output lies on the picture: feature maps, channels-last maps and token sequences as ``[B,C,h,w]``.

A layer has a *spatial grid* when its output, for a batch of ``B`` pictures of ``H×W``
pixels, is one of

- ``[B,C,h,w]`` (a convolutional feature map, channels first),
- ``[B,h,w,C]`` (channels last, as in ConvNeXt blocks and Swin stages), or
- ``[B,N,C]`` tokens: ``N = p + h·w`` with ``p`` prefix tokens (class / distillation /
  register tokens) that are dropped, the rest read row by row (ViT, DeiT, Swin's MLPs),

where ``h×w`` is the picture divided by a whole stride ``s`` (``h`` is ``H/s`` rounded
down or up, and so is ``w``), with ``h·w > 1``. ``p`` is what the model says: timm's
``num_prefix_tokens``, or one class token (``class_token`` / ``cls_token``); a model that says
nothing has none. Channels first wins when both readings fit. Anything else (attention
heads ``[B,heads,N,d]``, attention windows ``[windows·B,N,C]``, pooled vectors ``[B,C]``, 1×1
maps) has no spatial meaning and is refused. A ``reshape`` callable, like pytorch-grad-cam's
``reshape_transform``, maps a layer's output to ``[B,C,h,w]`` for layouts this rule does not know.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

Reshape = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Grid:
    """How a layer's output lies on the picture; ``layout``: ``'nchw'``, ``'nhwc'``, ``'tokens'`` or ``'custom'``."""

    layout: str
    size: tuple[int, int]
    prefix: int = 0
    reshape: Reshape | None = None

    def maps(self, output: Tensor) -> Tensor:
        """The output (or its gradient) as feature maps ``[B,C,h,w]``."""
        if self.layout == "nchw":
            return output
        if self.layout == "nhwc":
            return output.permute(0, 3, 1, 2)
        if self.layout == "tokens":
            height, width = self.size
            return output[:, self.prefix:].reshape(output.shape[0], height, width, -1).permute(0, 3, 1, 2)
        assert self.reshape is not None
        return _custom(self.reshape, output, output.shape[0])

    def describe(self) -> str:
        words = {"nchw": "feature maps", "nhwc": "channels-last maps", "custom": "your reshape"}
        kind = words.get(self.layout, f"tokens ({self.prefix} prefix dropped)")
        return f"{kind} on a {self.size[0]}×{self.size[1]} grid"


def prefix_tokens(net: nn.Module) -> int:
    """Tokens before the patch tokens: timm's ``num_prefix_tokens``, else one per class/distillation token."""
    count = getattr(net, "num_prefix_tokens", None)
    if isinstance(count, int):
        return count
    return sum(isinstance(getattr(net, name, None), Tensor) for name in ("class_token", "cls_token", "dist_token"))


def find_grid(output: object, batch: int, input_size: tuple[int, int], prefix: int = 0,
              reshape: Reshape | None = None) -> Grid | str:
    """The :class:`Grid` of a layer's output, or why it has none (a phrase ending the sentence "it has no grid: …")."""
    if reshape is not None:
        if not isinstance(output, Tensor):
            return f"its output is a {type(output).__name__}, not a tensor"
        maps = _custom(reshape, output, batch)
        return Grid("custom", (int(maps.shape[2]), int(maps.shape[3])), reshape=reshape)
    if not isinstance(output, Tensor):
        return f"its output is a {type(output).__name__}, not a tensor"
    shape = tuple(output.shape)
    if len(shape) < 3:
        return f"its output {list(shape)} has no spatial positions"
    if shape[0] != batch:
        return (f"its output {list(shape)} does not have the batch ({batch}) first (e.g. attention windows "
                "stacked along the batch)")
    if len(shape) == 4:
        for layout, (height, width) in (("nchw", shape[2:]), ("nhwc", shape[1:3])):
            if on_grid(height, width, input_size):
                return Grid(layout, (height, width)) if height * width > 1 else "its map is 1×1: one position"
        return (f"its output {list(shape)} is not the {input_size[0]}×{input_size[1]} input divided by a whole "
                "stride, channels first or last (e.g. attention heads × tokens)")
    if len(shape) == 3:
        grid = token_grid(shape[1], input_size, prefix)
        if grid is not None:
            return Grid("tokens", grid, prefix) if grid[0] * grid[1] > 1 else "its tokens form a 1×1 grid"
        return (f"its {shape[1]} tokens minus {prefix} prefix token(s) do not tile the {input_size[0]}×"
                f"{input_size[1]} input at a whole stride (pass reshape= for other layouts)")
    return f"its output {list(shape)} has {len(shape)} dimensions"


def on_grid(height: int, width: int, input_size: tuple[int, int]) -> bool:
    """Whether ``height×width`` is the input divided by one whole stride (each side rounded down or up)."""
    rows, cols = input_size
    return any(_divides(height, rows, s) and _divides(width, cols, s) for s in range(1, max(rows, cols) + 1))


def token_grid(tokens: int, input_size: tuple[int, int], prefix: int) -> tuple[int, int] | None:
    """The ``h×w`` grid that ``tokens - prefix`` tokens tile at a whole stride, or ``None``."""
    rows, cols = input_size
    for stride in range(1, max(rows, cols) + 1):
        for height in {rows // stride, math.ceil(rows / stride)}:
            for width in {cols // stride, math.ceil(cols / stride)}:
                if height * width == tokens - prefix and height > 0 and width > 0:
                    return height, width
    return None


def _divides(length: int, total: int, stride: int) -> bool:
    return length in (total // stride, math.ceil(total / stride))


def _custom(reshape: Reshape, output: Tensor, batch: int) -> Tensor:
    maps = reshape(output)
    if not isinstance(maps, Tensor) or maps.dim() != 4 or maps.shape[0] != batch:
        shape = list(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"reshape= must turn the layer's output {list(output.shape)} into feature maps "
                         f"[B,C,h,w] with B={batch}, it gave {shape}")
    return maps



def channels_first_problem(output: Tensor, input_size: tuple[int, int], prefix: int = 0) -> str | None:
    """Why ``output`` is not feature maps ``[B,C,h,w]`` or vectors ``[B,C]`` (for readers that need them), or ``None``.

    Channels-last maps and token sequences are named as such; 4-d outputs off the grid are left alone.
    """
    if output.dim() == 2:
        return None
    grid = find_grid(output, output.shape[0], input_size, prefix)
    if output.dim() == 4 and (not isinstance(grid, Grid) or grid.layout == "nchw"):
        return None
    if isinstance(grid, Grid):
        return f"its output {list(output.shape)} holds {grid.describe()}, not feature maps [B,C,h,w]"
    return f"its output {list(output.shape)} is neither feature maps [B,C,h,w] nor vectors [B,C]"
