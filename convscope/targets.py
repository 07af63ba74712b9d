"""Targets: what to explain, as a scalar per image.

A target maps the model's output ``[B,K]`` (and the activations of the layers
it names) to a tensor ``[B]``. Every technique takes one, given as

- an ``int`` class index, a class name (``'tabby'``), or ``'top'`` for the top prediction;
- a list / ``Tensor[B]`` of class indices, one per image;
- a :class:`Channel` or :class:`Neuron` of a layer;
- any callable ``output -> Tensor[B]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.models.model import Model

Activations = Mapping[str, Tensor]


class Target:
    """Base class: ``target(output, activations) -> Tensor[B]``; ``layers`` names what it reads."""

    layers: tuple[str, ...] = ()

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        raise NotImplementedError

    def classes(self, output: Tensor) -> Tensor | None:
        """Class index per image when the target is a class (for captions), else ``None``."""
        return None


@dataclass(frozen=True)
class ClassScore(Target):
    """The unnormalised score (logit) of a class, one index for all images or one per image."""

    index: int | tuple[int, ...]

    def classes(self, output: Tensor) -> Tensor:
        index = torch.as_tensor(self.index, device=output.device).reshape(-1)
        if index.numel() not in (1, output.shape[0]):
            raise ValueError(f"{index.numel()} class indices were given for a batch of {output.shape[0]} images; "
                             "give one for all or one per image")
        return index.expand(output.shape[0])

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        return output.gather(1, self.classes(output)[:, None])[:, 0]


@dataclass(frozen=True)
class ClassProbability(ClassScore):
    """The softmax probability of a class."""

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        return output.softmax(1).gather(1, self.classes(output)[:, None])[:, 0]


@dataclass(frozen=True)
class TopClass(Target):
    """The score of each image's own top prediction."""

    def classes(self, output: Tensor) -> Tensor:
        return output.detach().argmax(1)

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        return output.gather(1, self.classes(output)[:, None])[:, 0]


@dataclass(frozen=True)
class _LayerChannel(Target):
    """A target read from one channel of a layer's activations."""

    layer: str
    channel: int

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.layer,)

    def _maps(self, activations: Activations) -> Tensor:
        maps = activations[self.layer]
        if not 0 <= self.channel < maps.shape[1]:
            raise ValueError(f"channel {self.channel} is out of range: layer {self.layer!r} has {maps.shape[1]} "
                             "channels")
        return maps


@dataclass(frozen=True)
class Channel(_LayerChannel):
    """Mean activation of one channel of a layer (over all positions)."""

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        maps = self._maps(activations)
        return maps[:, self.channel].reshape(maps.shape[0], -1).mean(1)


@dataclass(frozen=True)
class Neuron(_LayerChannel):
    """One activation of a layer: channel at position (y, x); the centre when y, x are None."""

    y: int | None = None
    x: int | None = None

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        maps = self._maps(activations)
        if maps.dim() == 2:
            return maps[:, self.channel]
        height, width = maps.shape[-2:]
        y = height // 2 if self.y is None else self.y
        x = width // 2 if self.x is None else self.x
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f"position ({y}, {x}) is outside layer {self.layer!r}'s {height}x{width} map")
        return maps[:, self.channel, y, x]


@dataclass(frozen=True)
class Custom(Target):
    """Any callable on the model output returning one value per image."""

    function: Callable[[Tensor], Tensor]

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        value = self.function(output)
        if not isinstance(value, Tensor) or value.shape != (output.shape[0],):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"a target callable must return a Tensor[B] with B={output.shape[0]}, got {shape}")
        return value


TargetLike = Target | int | str | Sequence[int] | Tensor | Callable[[Tensor], Tensor] | None


def as_target(spec: TargetLike, model: Model) -> Target:
    """Turn any accepted target description into a :class:`Target` (``None`` means the top class)."""
    if isinstance(spec, Target):
        for layer in spec.layers:
            model.layer(layer)
        return spec
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("top", "")):
        return TopClass()
    if isinstance(spec, bool):
        raise TypeError("a target cannot be a bool")
    if isinstance(spec, int | str):
        return ClassScore(model.class_index(spec))
    if isinstance(spec, Tensor):
        spec = spec.reshape(-1).tolist()
    if isinstance(spec, Sequence):
        return ClassScore(tuple(model.class_index(s) for s in spec))
    if callable(spec):
        return Custom(spec)
    raise TypeError(f"cannot use {type(spec).__name__} as a target: give a class index or name, 'top', "
                    "a list of classes, a Channel/Neuron, or a callable on the output")


def parse_target(text: str | None, model: Model) -> Target:
    """Command-line form: ``281``, ``tabby``, ``top``, ``channel:LAYER:C`` or ``neuron:LAYER:C[:Y:X]``."""
    if text is None:
        return TopClass()
    kind, _, rest = text.partition(":")
    if kind in ("channel", "neuron") and rest:
        layer, _, numbers = rest.rpartition(":") if kind == "channel" else _split_neuron(rest)
        try:
            values = [int(v) for v in numbers.split(":")]
        except ValueError as error:
            raise ValueError(f"cannot read target {text!r}: write channel:LAYER:C or neuron:LAYER:C[:Y:X]") from error
        target = Channel(layer, values[0]) if kind == "channel" else Neuron(layer, *values)
        return as_target(target, model)
    return as_target(text, model)


def _split_neuron(rest: str) -> tuple[str, str, str]:
    parts = rest.split(":")
    numeric = 3 if len(parts) >= 4 and all(p.lstrip("-").isdigit() for p in parts[-3:]) else 1
    return ":".join(parts[:-numeric]), ":", ":".join(parts[-numeric:])
