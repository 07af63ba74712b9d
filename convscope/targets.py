"""Targets: what to explain, as a scalar per image.

A target maps the model's output (and the activations of the layers it names) to a
tensor ``[B]``. Every technique takes one, given as

- an ``int`` class index, a class name (``'tabby'``), or ``'top'`` for the top prediction;
- a list / ``Tensor[B]`` of class indices, one per image;
- a :class:`Channel` or :class:`Neuron` of a layer; a :class:`Region` of a segmentation;
  a :class:`BoxScore` of a detection model;
- any callable ``output -> Tensor[B]``.

A class is read from the output as the model's ``output`` kind says (:data:`OUTPUT_KINDS`):

- ``'classes'`` ``[B,K]`` logits: score = the logit, probability = softmax;
- ``'binary'`` ``[B,1]`` one logit ``z``: classes 0 and 1 with scores ``-z``, ``z`` and
  probabilities ``σ(-z)``, ``σ(z)``;
- ``'multilabel'`` ``[B,K]``: score = the logit, probability = ``σ`` of each logit on its own;
- ``'segmentation'`` ``[B,K,H,W]``: the class's mean logit (probability: mean softmax) over a
  region — every pixel, a mask or a box (:class:`Region`);
- ``'regression'`` ``[B,K]``: the output itself (its "probability" is the value);
- ``'auto'``: ``[B,1]`` binary, ``[B,K]`` classes, ``[B,K,H,W]`` segmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace

import torch
from torch import Tensor

from convscope.models.model import Model
from convscope.models.tokens import channels_first_problem

Activations = Mapping[str, Tensor]
OUTPUT_KINDS = ("auto", "classes", "binary", "multilabel", "segmentation", "regression", "detection")
Box = tuple[float, float, float, float]
DETECTION_CLASSES = ("a detection model gives boxes, not one class score per picture: explain one detection with "
                     "target=convscope.BoxScore(label, box) and a gradient method (saliency, guided backprop, "
                     "SmoothGrad, integrated gradients, Grad-CAM, LayerCAM)")


def output_kind(output: object, kind: str = "auto") -> str:
    """The kind of ``output`` (``kind``, or found from its shape when ``'auto'``); checks they agree."""
    if kind == "detection" or not isinstance(output, Tensor):
        if kind in ("auto", "detection") and isinstance(output, list | tuple) and all(
                isinstance(o, dict) and "scores" in o for o in output):
            return "detection"
        raise ValueError(f"cannot read the model's output ({type(output).__name__}) as {kind}: classes, segmentation "
                         "and regression give a Tensor, detection models a list of dicts with 'boxes', 'labels', "
                         "'scores'")
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}: use one of {', '.join(OUTPUT_KINDS)}")
    dims = output.dim()
    if kind == "auto":
        if dims == 2:
            return "binary" if output.shape[1] == 1 else "classes"
        if dims == 4:
            return "segmentation"
        raise ValueError(f"cannot tell what an output of shape {list(output.shape)} means; give the model its kind: "
                         "convscope.Model(net, output='classes'|'binary'|'multilabel'|'segmentation'|'regression')")
    wanted = 4 if kind == "segmentation" else 2
    if dims != wanted or (kind == "binary" and output.shape[1] != 1):
        shape = "[B,K,H,W]" if kind == "segmentation" else "[B,1]" if kind == "binary" else "[B,K]"
        raise ValueError(f"a {kind} output is {shape}, this model gives {list(output.shape)}")
    return kind


def check_finite_output(output: object, name: str = "the model") -> None:
    """A ``ValueError`` when a tensor output holds NaN or infinity: maps and probabilities from it would be NaN."""
    if isinstance(output, Tensor) and output.is_floating_point() and not bool(torch.isfinite(output).all()):
        bad = int((~torch.isfinite(output)).sum())
        raise ValueError(f"{name} gives NaN or infinite outputs ({bad} of {output.numel()} values) on these pictures, "
                         "so there is nothing to explain or rank: check its weights (a NaN in a weights file or a "
                         "diverged training run) or its forward on these inputs")


@dataclass(frozen=True)
class Region:
    """Where a segmentation class is read: every pixel (``None``), a ``mask`` ``[H,W]``, or a ``box`` (x0, y0, x1, y1).

    Both are in the output's pixels; the box includes x0, y0 and excludes x1, y1. The score is
    the class's mean logit over the region (its probability: the mean per-pixel softmax).
    """

    mask: Tensor | None = None
    box: Box | None = None

    def weights(self, output: Tensor) -> Tensor:
        """``[1,1,H,W]`` non-negative weights summing to 1 over the region."""
        height, width = output.shape[-2:]
        if self.mask is not None and self.box is not None:
            raise ValueError("give a region as a mask or a box, not both")
        if self.mask is not None:
            mask = self.mask.to(output.device, torch.float32)
            if mask.dim() == 3 and mask.shape[0] == 1:
                mask = mask[0]
            if tuple(mask.shape) != (height, width):
                raise ValueError(f"the mask is {list(self.mask.shape)}; it must be [H,W] = [{height},{width}], the "
                                 "output's size, one mask for all images")
        else:
            mask = torch.ones(height, width, device=output.device)
            if self.box is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in self.box)
                if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                    raise ValueError(f"box {self.box} is not inside the {width}×{height} output (x0, y0, x1, y1 with "
                                     "x0 < x1, y0 < y1)")
                mask = torch.zeros_like(mask)
                mask[y0:y1, x0:x1] = 1
        if mask.sum() <= 0:
            raise ValueError("the region is empty: the mask has no positive pixel")
        return (mask / mask.sum())[None, None]


def _check_region(region: Region | None, kind: str) -> None:
    """A region is read from a segmentation's per-pixel scores; a classifier's one score per picture has none."""
    if region is not None and kind != "segmentation":
        raise ValueError(f"a region (box or mask) is read from a segmentation output [B,K,H,W]; this model's output "
                         f"is {kind} (one score per picture, no positions): explain the class over the whole picture "
                         "(target=CLASS), or give a detection model box:LABEL:X0,Y0,X1,Y1")


def class_scores(output: Tensor, kind: str = "auto", region: Region | None = None) -> Tensor:
    """Every class's score ``[B,K]`` (``[B,2]`` for a binary output), as the module docstring says."""
    kind = output_kind(output, kind)
    if kind == "detection":
        raise ValueError(DETECTION_CLASSES)
    _check_region(region, kind)
    if kind == "binary":
        return torch.cat([-output, output], 1)
    if kind == "segmentation":
        scores = torch.cat([-output, output], 1) if output.shape[1] == 1 else output
        return (scores * (region or Region()).weights(output).to(scores.dtype)).sum((2, 3))
    return output


def class_probabilities(output: Tensor, kind: str = "auto", region: Region | None = None) -> Tensor:
    """Every class's probability ``[B,K]``: softmax, sigmoid per logit, per-pixel softmax averaged, or the value."""
    kind = output_kind(output, kind)
    if kind == "detection":
        raise ValueError(DETECTION_CLASSES)
    _check_region(region, kind)
    output = output.float()
    if kind == "binary":
        return torch.cat([torch.sigmoid(-output), torch.sigmoid(output)], 1)
    if kind == "multilabel":
        return torch.sigmoid(output)
    if kind == "regression":
        return output
    if kind == "segmentation":
        soft = torch.cat([torch.sigmoid(-output), torch.sigmoid(output)], 1) if output.shape[1] == 1 \
            else output.softmax(1)
        return (soft * (region or Region()).weights(output)).sum((2, 3))
    return output.softmax(1)


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
    """The score (logit) of a class, one index for all images or one per image; ``kind``: see the module."""

    index: int | tuple[int, ...]
    kind: str = "auto"
    region: Region | None = None

    def classes(self, output: Tensor) -> Tensor:
        """The class explained for each image of ``output`` ``[B]`` (one given for all, or one per image)."""
        index = torch.as_tensor(self.index, device=output.device).reshape(-1)
        if index.numel() not in (1, output.shape[0]):
            raise ValueError(f"{index.numel()} class indices were given for a batch of {output.shape[0]} images; "
                             "give one for all or one per image")
        count = class_scores(output.detach(), self.kind, self.region).shape[1]
        if not bool(((index >= 0) & (index < count)).all()):
            raise ValueError(f"class index {index.tolist()} is out of range: the output has {count} classes")
        return index.expand(output.shape[0])

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        return class_scores(output, self.kind, self.region).gather(1, self.classes(output)[:, None])[:, 0]


@dataclass(frozen=True)
class ClassProbability(ClassScore):
    """The probability of a class: softmax, or sigmoid for binary and multi-label outputs (see the module)."""

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        probabilities = class_probabilities(output, self.kind, self.region).to(output.dtype)
        return probabilities.gather(1, self.classes(output)[:, None])[:, 0]


@dataclass(frozen=True)
class TopClass(Target):
    """The score of each image's own top prediction (the output itself for a one-value regression)."""

    kind: str = "auto"
    region: Region | None = None

    def classes(self, output: Tensor) -> Tensor:
        """Each image's most probable class ``[B]``, from ``output``."""
        scores = class_scores(output.detach(), self.kind, self.region)
        if output_kind(output, self.kind) == "regression" and scores.shape[1] > 1:
            raise ValueError(f"a regression output has {scores.shape[1]} values and no top class; give the index of "
                             "the value to explain (target=0)")
        return scores.argmax(1)

    def __call__(self, output: Tensor, activations: Activations) -> Tensor:
        return class_scores(output, self.kind, self.region).gather(1, self.classes(output)[:, None])[:, 0]


@dataclass(frozen=True)
class BoxScore(Target):
    """A detection model's score for class ``label`` at ``box`` (x0, y0, x1, y1, input pixels), per image.

    Per image, the score of the detection of that class whose box overlaps ``box`` most, if that
    overlap (intersection over union) is at least ``iou``; 0 when there is none (the object was not
    found), as pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``. Works on torchvision's detection
    models (eval mode: a list of dicts with ``boxes``, ``labels``, ``scores``).
    """

    label: int
    box: Box
    iou: float = 0.5

    def __call__(self, output: object, activations: Activations) -> Tensor:
        output_kind(output, "detection")
        from torchvision.ops import box_iou

        values = []
        for found in output:  # type: ignore[attr-defined]  # a list, checked by output_kind
            wanted = torch.tensor([self.box], dtype=found["boxes"].dtype, device=found["boxes"].device)
            overlap = box_iou(wanted, found["boxes"].detach())[0] if len(found["boxes"]) else found["scores"][:0]
            match = (found["labels"] == self.label) & (overlap >= self.iou)
            if bool(match.any()):
                values.append(found["scores"][torch.where(match, overlap, -1).argmax()])
            else:
                values.append(found["scores"].sum() * 0)  # not detected: 0, still in the graph
        return torch.stack(values)


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
        if maps.dim() not in (2, 4):
            raise ValueError(f"channel and neuron targets read feature maps [B,C,h,w] or vectors [B,C]; layer "
                             f"{self.layer!r} gives {list(maps.shape)} (tokens?): choose a convolutional layer, or "
                             "a callable target on the output")
        size = getattr(activations, "input_size", None)
        if maps.dim() == 4 and size is not None:
            problem = channels_first_problem(maps, size)
            if problem is not None:
                raise ValueError(f"channel and neuron targets read feature maps [B,C,h,w]; layer {self.layer!r}: "
                                 f"{problem}: choose a layer with channels first (e.g. a block's output), or a "
                                 "callable target on the output")
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
        if output.requires_grad and not value.requires_grad:
            raise ValueError("the target callable's value does not depend on the model's output (it has no gradient): "
                             "compute it from the output it is given, e.g. lambda output: output[:, 3]")
        return value


TargetLike = Target | int | str | Sequence[int | str] | Tensor | Callable[[Tensor], Tensor] | None


def as_target(spec: TargetLike, model: Model) -> Target:
    """Turn any accepted target description into a :class:`Target` (``None`` means the top class)."""
    kind = getattr(model, "output", "auto")
    if isinstance(spec, Target):
        for layer in spec.layers:
            model.layer(layer)
        return _with_kind(spec, kind)
    if kind == "detection" and not callable(spec):
        raise ValueError("a detection model explains one detection: give target=convscope.BoxScore(label, box)")
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("top", "")):
        return TopClass(kind)
    if isinstance(spec, bool):
        raise TypeError("a target cannot be a bool")
    if isinstance(spec, int | str):
        return ClassScore(model.class_index(spec), kind)
    if isinstance(spec, Tensor):
        spec = spec.reshape(-1).tolist()
    if isinstance(spec, Sequence):
        return ClassScore(tuple(model.class_index(s) for s in spec), kind)
    if callable(spec):
        return Custom(spec)
    raise TypeError(f"cannot use {type(spec).__name__} as a target: give a class index or name, 'top', "
                    "a list of classes, a Channel/Neuron, or a callable on the output")


def _with_kind(target: Target, kind: str) -> Target:
    """``target`` reading the output as the model's ``kind`` says, when it was made with ``kind='auto'``."""
    own = getattr(target, "kind", None)
    if not is_dataclass(target) or "kind" not in {f.name for f in fields(target)} or kind == "auto" or own == kind:
        return target
    if own != "auto":
        raise ValueError(f"the target reads the output as {own} but the model's output is {kind}: leave the "
                         f"target's kind out (it is taken from the model) or give the model output={own!r}")
    return replace(target, kind=kind)


def parse_target(text: str | None, model: Model) -> Target:
    """Command-line form: ``281``, ``tabby``, ``top``, ``channel:LAYER:C``, ``neuron:LAYER:C[:Y:X]``,
    ``region:CLASS:X0,Y0,X1,Y1`` (a segmentation class over a box) or ``box:LABEL:X0,Y0,X1,Y1`` (a detection)."""
    if text is None:
        return as_target(None, model)
    kind, _, rest = text.partition(":")
    if kind in ("region", "box") and rest:
        name, _, numbers = rest.rpartition(":")
        try:
            box = tuple(float(v) for v in numbers.split(","))
        except ValueError:
            box = ()
        if not name or len(box) != 4:
            raise ValueError(f"cannot read target {text!r}: write {kind}:{'CLASS' if kind == 'region' else 'LABEL'}:"
                             "X0,Y0,X1,Y1")
        if kind == "box":
            if not name.isdigit():
                raise ValueError(f"a detection label is a number, got {name!r} in target {text!r}")
            return BoxScore(int(name), box)  # type: ignore[arg-type]
        return ClassScore(model.class_index(name), getattr(model, "output", "auto"), Region(box=box))  # type: ignore
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
