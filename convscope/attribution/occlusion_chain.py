"""A network as a chain of modules, each with its spatial mapping: what incremental occlusion needs to know.

The chain is found once from one forward pass: the model's children in call order
(``nn.Sequential`` containers opened), each fed exactly the previous one's output (a
reshape such as ``torch.flatten`` in between is allowed). For each element up to the first
one that mixes all positions (global pooling, squeeze-and-excitation, attention, a linear
layer), its exact receptive field as a whole block (:mod:`convscope.scan.receptive_field`)
gives a :class:`Span` per axis: output position ``y`` reads input rows ``[lo + y·stride, hi + y·stride)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.scan.receptive_field import receptive_fields


@dataclass(frozen=True)
class Span:
    """One axis of a block: output ``y`` reads inputs ``[lo + y·stride, hi + y·stride)`` of ``size_in``."""

    lo: int
    hi: int
    stride: int
    size_in: int
    size_out: int

    @property
    def pointwise(self) -> bool:
        return self.lo == 0 and self.hi == 1 and self.stride == 1


@dataclass(frozen=True)
class Element:
    """One module of the chain, the per-item shape of the input it is called with, and its spans (``None``: global)."""

    module: nn.Module
    shape: tuple[int, ...]
    rows: Span | None = None
    cols: Span | None = None

    @property
    def local(self) -> bool:
        return self.rows is not None and self.cols is not None

    @property
    def pointwise(self) -> bool:
        return self.rows is not None and self.cols is not None and self.rows.pointwise and self.cols.pointwise

    def __call__(self, inputs: Tensor) -> Tensor:
        return self.module(self.shaped(inputs))

    def shaped(self, inputs: Tensor) -> Tensor:
        """``inputs`` with the per-item shape the module takes (reshaped only if needed: that keeps channels-last)."""
        return inputs if tuple(inputs.shape[1:]) == self.shape else inputs.reshape(inputs.shape[0], *self.shape)


@dataclass(frozen=True)
class Chain:
    """The model as ``elements`` run one after the other; ``local`` elements come first."""

    elements: tuple[Element, ...]

    @property
    def local_count(self) -> int:
        return next((k for k, element in enumerate(self.elements) if not element.local), len(self.elements))

    def run(self, inputs: Tensor) -> tuple[list[Tensor], Tensor]:
        """Each element's input (as it receives it) and the output, for a batch."""
        seen, value = [], inputs
        for element in self.elements:
            value = element.shaped(value)
            seen.append(value)
            value = element.module(value)
        return seen, value

    def with_modules(self, modules: list[nn.Module]) -> Chain:
        """This chain's shapes and spans with ``modules`` (e.g. folded copies of its own) in their places."""
        if len(modules) != len(self.elements):
            raise ValueError(f"{len(modules)} modules for a chain of {len(self.elements)}")
        return Chain(tuple(Element(module, e.shape, e.rows, e.cols)
                           for module, e in zip(modules, self.elements, strict=True)))

    def element_for(self, module: nn.Module) -> int | None:
        """The index of the element whose output is ``module``'s output (a container: its last element), or None."""
        for k, element in enumerate(self.elements):
            if element.module is module:
                return k
        if isinstance(module, nn.Sequential):
            inside = _openings(module)
            found = [k for k, element in enumerate(self.elements) if any(element.module is m for m in inside)]
            if found and len(found) == len(inside) and found == list(range(found[0], found[0] + len(found))):
                return found[-1]
        return None


def model_chain(net: nn.Module, example: Tensor) -> Chain:
    """The chain of ``net`` from one forward pass of ``example`` ``[1,C,H,W]`` (in evaluation mode, no gradients).

    Raises ValueError saying why when ``net`` is not such a chain.
    """
    candidates = _openings(net)
    if not candidates or candidates == [net]:
        raise ValueError("the model has no sub-modules to run one after the other")
    calls: list[tuple[nn.Module, tuple, dict, object]] = []

    def record(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        calls.append((module, args, kwargs, output))

    handles = [module.register_forward_hook(record, with_kwargs=True) for module in candidates]
    try:
        output = net(example)
    finally:
        for handle in handles:
            handle.remove()
    modules = [call[0] for call in calls]
    if len({id(m) for m in modules}) != len(modules):
        raise ValueError("a module of the chain is called more than once")
    elements, previous = [], example
    for module, args, kwargs, out in calls:
        if kwargs or len(args) != 1 or not isinstance(args[0], Tensor) or not isinstance(out, Tensor):
            raise ValueError(f"{type(module).__name__} does not take one tensor and return one")
        if not _same_values(previous, args[0]):
            raise ValueError(f"{type(module).__name__} is not fed the previous module's output "
                             "(the forward does more than call its children in turn)")
        elements.append(Element(module, tuple(args[0].shape[1:])))
        previous = out
    if not isinstance(output, Tensor) or not _same_values(previous, output) or previous.shape != output.shape:
        raise ValueError("the model's output is not its last module's output")
    return Chain(tuple(_with_spans(elements, calls)))


def _openings(module: nn.Module) -> list[nn.Module]:
    """``module``'s children in order, ``nn.Sequential`` containers replaced by their own children."""
    found = []
    for child in module.children():
        found.extend(_openings(child) if isinstance(child, nn.Sequential) else [child])
    return found


def _same_values(before: Tensor, after: Tensor) -> bool:
    return before.numel() == after.numel() and torch.equal(before.reshape(-1), after.reshape(-1))


def _with_spans(elements: list[Element], calls: list) -> list[Element]:
    """Spans for the elements up to the first one that mixes all positions (and none after it)."""
    spanned: list[Element] = []
    for k, (element, (module, args, _, out)) in enumerate(zip(elements, calls, strict=True)):
        spans = _spans(module, args[0], out)
        following = elements[k + 1].shape if k + 1 < len(elements) else tuple(out.shape[1:])
        if spans is None or following != tuple(out.shape[1:]):
            return spanned + elements[k:]
        spanned.append(Element(element.module, element.shape, *spans))
    return spanned


def _spans(module: nn.Module, inputs: Tensor, output: Tensor) -> tuple[Span, Span] | None:
    if inputs.dim() != 4 or output.dim() != 4:
        return None
    try:
        field = receptive_fields(nn.Sequential(module), ["0"], inputs[:1])["0"]
    except ValueError:
        return None  # an operation the receptive fields cannot follow: treat the block as global
    if field.whole_input:
        return None
    (height, width), (out_h, out_w) = inputs.shape[-2:], output.shape[-2:]
    rows = Span(int(field.top.min()), int(field.bottom.max()), field.stride[0], height, out_h)
    cols = Span(int(field.left.min()), int(field.right.max()), field.stride[1], width, out_w)
    if rows.hi <= rows.lo or cols.hi <= cols.lo or min(rows.stride, cols.stride) < 1:
        return None
    return rows, cols
