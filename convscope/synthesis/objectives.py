"""Objectives: what the optimisation loop maximises, one value per image, composable with + − ×.

An objective reads a :class:`Evaluation` (the images, the model's output and the
activations of the layers it names) and returns ``Tensor[B]``. Objectives add,
subtract, multiply (by numbers or by each other) and negate::

    objective = channel("blocks.4", 17) - 1e-3 * total_variation()

The loop maximises the sum over the batch; its loss history records the negation.
Ideas after Lucid's objectives (Olah et al., https://distill.pub/2017/feature-visualization/).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.targets import Target


@dataclass
class Evaluation:
    """One forward pass as an objective sees it.

    ``images`` are the parameterised pictures ``[B,3,H,W]`` in [0, 1] before the
    robustness transforms; ``inputs`` the normalised batch the model saw; ``output``
    its scores ``[B,K]`` (``None`` when no part of the objective reads them and the pass
    stopped early); ``activations`` the outputs of the layers the objective names.
    """

    images: Tensor
    inputs: Tensor
    output: Tensor | None
    activations: Mapping[str, Tensor]
    mean: Tensor
    std: Tensor

    def activation(self, layer: str) -> Tensor:
        """The activation recorded at ``layer`` in this pass; a ValueError when the layer produced none."""
        if layer not in self.activations:
            raise ValueError(f"layer {layer!r} produced no output in this pass (is it used by the model's forward?)")
        return self.activations[layer]

    def model_output(self) -> Tensor:
        """The model's output in this pass (there whenever the objective reads it: ``reads_output``)."""
        if self.output is None:
            raise ValueError("the pass stopped before the model's output: give the objective reads_output=True")
        return self.output


class Objective:
    """A function ``Evaluation -> Tensor[B]`` with the layers it reads and a readable name.

    ``reads_output`` says whether it needs the model's final output; when no part of an
    objective does, the loop stops each forward pass once its layers have run.
    """

    def __init__(self, function: Callable[[Evaluation], Tensor], layers: tuple[str, ...] = (),
                 name: str = "objective", reads_output: bool = True) -> None:
        self.function = function
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name
        self.reads_output = reads_output

    def __call__(self, evaluation: Evaluation) -> Tensor:
        value = self.function(evaluation)
        batch = evaluation.images.shape[0]
        if value.dim() == 0:
            value = value.expand(batch)
        if value.shape != (batch,):
            raise ValueError(f"objective {self.name} returned shape {tuple(value.shape)}; "
                             f"an objective returns one value per image, Tensor[{batch}]")
        return value

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def __add__(self, other: Objective | float) -> Objective:
        other = as_objective(other)
        return Objective(lambda e: self(e) + other(e), self.layers + other.layers, f"{self.name} + {other.name}",
                         self.reads_output or other.reads_output)

    __radd__ = __add__

    def __neg__(self) -> Objective:
        return Objective(lambda e: -self(e), self.layers, f"-({self.name})", self.reads_output)

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-as_objective(other))

    def __rsub__(self, other: Objective | float) -> Objective:
        return as_objective(other) + (-self)

    def __mul__(self, other: Objective | float) -> Objective:
        if isinstance(other, int | float):
            factor = other
            return Objective(lambda e: factor * self(e), self.layers, f"{other:g}·{self.name}", self.reads_output)
        other = as_objective(other)
        return Objective(lambda e: self(e) * other(e), self.layers + other.layers, f"({self.name})·({other.name})",
                         self.reads_output or other.reads_output)

    __rmul__ = __mul__

    def __truediv__(self, other: float) -> Objective:
        if not isinstance(other, int | float) or other == 0:
            raise ValueError(f"an objective can be divided by a non-zero number, got {other!r}")
        return self * (1.0 / other)

    def on(self, *indices: int) -> Objective:
        """The same objective counted only for the given batch items (0 elsewhere)."""
        if not indices:
            raise ValueError("on() needs at least one batch index")

        def restricted(e: Evaluation) -> Tensor:
            value = self(e)
            mask = torch.zeros_like(value)
            mask[list(indices)] = 1
            return value * mask

        return Objective(restricted, self.layers, f"{self.name} on {list(indices)}", self.reads_output)


def as_objective(spec: Objective | Target | float) -> Objective:
    """An :class:`Objective` from an objective, a convscope ``Target`` or a constant."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, Target):
        return Objective(lambda e: spec(e.model_output(), e.activations), tuple(spec.layers), type(spec).__name__)
    if isinstance(spec, bool):
        raise TypeError("an objective cannot be a bool")
    if isinstance(spec, int | float):
        value = float(spec)
        return Objective(lambda e: torch.full((e.images.shape[0],), value, device=e.images.device), (), f"{value:g}",
                         reads_output=False)
    raise TypeError(f"cannot use {type(spec).__name__} as an objective: give an Objective, a convscope Target "
                    "(ClassScore, Channel, Neuron …) or a number")


def class_score(index: int | Sequence[int]) -> Objective:
    """The class's unnormalised score S_c (logit) — Simonyan et al.'s objective (https://arxiv.org/abs/1312.6034).

    ``index`` is one class for every image or a sequence with one class per image.
    """
    classes = _class_indices(index)
    return Objective(lambda e: _columns(e.model_output(), classes), (), f"score{list(classes)}")


def class_log_probability(index: int | Sequence[int]) -> Objective:
    """log softmax of the class (one, or one per image): raises its score *and* lowers every other one."""
    classes = _class_indices(index)
    return Objective(lambda e: _columns(e.model_output().log_softmax(1), classes), (), f"log p{list(classes)}")


def channel(layer: str, index: int) -> Objective:
    """Mean activation of one channel of ``layer`` over all positions (a vector layer's unit: its value)."""
    _check_index(index, "channel")

    def value(e: Evaluation) -> Tensor:
        maps = _channel_maps(e, layer, index)
        return maps.reshape(maps.shape[0], -1).mean(1)

    return Objective(value, (layer,), f"{layer}:{index}", reads_output=False)


def neuron(layer: str, index: int, y: int | None = None, x: int | None = None) -> Objective:
    """One unit: channel ``index`` of ``layer`` at (y, x) — the centre of the map when not given."""
    _check_index(index, "channel")

    def value(e: Evaluation) -> Tensor:
        maps = _channel_maps(e, layer, index)
        if maps.dim() == 1:
            return maps
        height, width = maps.shape[-2:]
        row, col = height // 2 if y is None else y, width // 2 if x is None else x
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(f"position ({row}, {col}) is outside layer {layer!r}'s {height}x{width} map")
        return maps[:, row, col]

    return Objective(value, (layer,), f"{layer}:{index}@({y},{x})", reads_output=False)


def direction(layer: str, vector: Tensor, *, cosine_power: float = 0.0) -> Objective:
    """Mean projection of ``layer``'s activation vectors onto ``vector`` (a direction in channel space).

    With ``cosine_power`` > 0 the dot product is multiplied by cos^p, which favours
    activations that point along the direction rather than merely large ones.
    """
    if vector.dim() != 1:
        raise ValueError(f"a direction is a vector [C], got shape {tuple(vector.shape)}")
    unit = vector / vector.norm().clamp_min(1e-12)

    def value(e: Evaluation) -> Tensor:
        acts = e.activation(layer)
        if acts.shape[1] != unit.numel():
            raise ValueError(f"direction has {unit.numel()} entries but layer {layer!r} has {acts.shape[1]} channels")
        acts = acts.reshape(acts.shape[0], acts.shape[1], -1)
        dot = torch.einsum("bcn,c->bn", acts, unit.to(acts))
        if cosine_power:
            cosine = dot / acts.norm(dim=1).clamp_min(1e-6)
            dot = dot * cosine.clamp_min(1e-6) ** cosine_power
        return dot.mean(1)

    return Objective(value, (layer,), f"{layer}·direction", reads_output=False)


def activation_norm(layer: str) -> Objective:
    """Half the mean squared activation of ``layer``: its gradient is the activation itself (DeepDream)."""
    return Objective(lambda e: 0.5 * e.activation(layer).pow(2).flatten(1).mean(1), (layer,), f"‖{layer}‖²",
                     reads_output=False)


def _class_indices(index: int | Sequence[int]) -> tuple[int, ...]:
    indices = (index,) if isinstance(index, int) else tuple(index)
    if not indices:
        raise ValueError("no class index was given")
    for i in indices:
        _check_index(i, "class index")
    return indices


def _columns(output: Tensor, classes: tuple[int, ...]) -> Tensor:
    if output.dim() != 2 or max(classes) >= output.shape[1]:
        raise ValueError(f"class {max(classes)} is out of range for an output of shape {tuple(output.shape)}")
    if len(classes) not in (1, output.shape[0]):
        raise ValueError(f"{len(classes)} classes were given for a batch of {output.shape[0]} images; "
                         "give one for all or one per image")
    index = torch.tensor(classes, device=output.device).expand(output.shape[0])
    return output.gather(1, index[:, None])[:, 0]


def _channel_maps(e: Evaluation, layer: str, index: int) -> Tensor:
    acts = e.activation(layer)
    if not 0 <= index < acts.shape[1]:
        raise ValueError(f"channel {index} is out of range: layer {layer!r} has {acts.shape[1]} channels")
    return acts[:, index]


def _check_index(index: int, kind: str) -> None:
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"{kind} must be an int, got {type(index).__name__}")
    if index < 0:
        raise ValueError(f"{kind} must be ≥ 0, got {index}")
