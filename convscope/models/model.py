"""A network together with what a visualisation needs: preprocessing, class names, layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import torch
from torch import Tensor, nn

from convscope.models.labels import class_index, numbered_class_names
from convscope.models.layers import get_layer, layer_names
from convscope.models.preprocessing import Preprocess
from convscope.reprs import short_repr


@dataclass
class Model:
    """A classifier ready to be looked into.

    ``net`` maps a normalised batch ``[B,C,H,W]`` to its output; ``output`` says what that is
    (:data:`convscope.targets.OUTPUT_KINDS`): ``'classes'`` (``[B,K]`` logits, softmax),
    ``'binary'`` (``[B,1]``, one logit: classes 0 and 1 by sigmoid), ``'multilabel'`` (a sigmoid
    per class), ``'segmentation'`` (``[B,K,H,W]``), ``'regression'`` (the values themselves),
    ``'detection'`` (torchvision's list of dicts), or ``'auto'`` (from the shape: ``[B,1]``
    binary, ``[B,K]`` classes, ``[B,K,H,W]`` segmentation). ``preprocess`` turns pictures into
    the batch; ``class_names`` has K entries, 2 for a binary output (``synonyms`` optional, e.g.
    ImageNet's ``'tabby, tabby cat'``).
    """

    __repr__ = short_repr

    net: nn.Module
    preprocess: Preprocess = field(default_factory=Preprocess)
    class_names: list[str] | None = None
    name: str = "model"
    synonyms: list[str] | None = None
    output: str = "auto"

    def __post_init__(self) -> None:
        from convscope.targets import OUTPUT_KINDS

        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"unknown output kind {self.output!r}: use one of {', '.join(OUTPUT_KINDS)}")

    def __call__(self, inputs: Tensor) -> Tensor:
        return self.net(inputs)

    @property
    def device(self) -> torch.device:
        """The device of the network's first parameter (or buffer); CPU for a network without either."""
        tensor: Tensor | None = next(self.net.parameters(), None)
        if tensor is None:
            tensor = next(self.net.buffers(), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type of the network's parameters (float32 for a network without any): inputs are cast
        to it, as a float64 batch would not run through float32 weights."""
        tensors = chain(self.net.parameters(), self.net.buffers())  # lazily: the first float one ends the walk
        tensor = next((t for t in tensors if t.is_floating_point()), None)
        return tensor.dtype if tensor is not None else torch.float32

    def to(self, device: str | torch.device) -> Model:
        """Move the network to ``device``; returns this model."""
        self.net.to(device)
        return self

    def prepare(self, pictures: Tensor | Sequence[Tensor]) -> Tensor:
        """Pictures (``[C,H,W]`` in [0, 1], any size, or a list) → a normalised batch on the model's device and in
        its floating-point type."""
        if isinstance(pictures, Tensor) and pictures.dim() == 4:
            pictures = list(pictures)
        return self.preprocess(pictures).to(self.device, self.dtype)

    def layer_names(self) -> list[str]:
        """Every named sub-module's dotted name, in definition order."""
        return layer_names(self.net)

    def layer(self, name: str | nn.Module) -> nn.Module:
        """The sub-module with this dotted name (or the module itself); close names are suggested when unknown."""
        return get_layer(self.net, name)

    def classes(self, count: int | None = None) -> list[str]:
        """Class names; numbered names when the model has none."""
        if self.class_names is not None:
            return self.class_names
        count = count if count is not None else _output_count(self.net, self.preprocess)
        if count == 1 and self.output in ("auto", "binary", "segmentation"):
            return numbered_class_names(2)  # one logit (per pixel): class 0 (σ(-z)) and class 1 (σ(z))
        return numbered_class_names(count)

    def class_index(self, name: str | int) -> int:
        """The index of a class given by name, synonym or index; close names are suggested when it is unknown."""
        return class_index(name, self.classes(), self.synonyms)


def _output_count(net: nn.Module, preprocess: Preprocess | None = None) -> int:
    """Classes: the last ``nn.Linear``'s outputs, the last ``nn.Conv2d``'s channels, or one zero picture's output."""
    last_linear = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if last_linear:
        return last_linear[-1].out_features
    last_conv = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if last_conv:  # a fully convolutional network (segmentation): one output map per class
        return last_conv[-1].out_channels
    if preprocess is not None:  # TorchScript and exported programs hide their modules: ask the network itself
        from convscope.hooks import inspection_mode

        device = next(iter(net.parameters()), torch.zeros(())).device
        zeros = torch.zeros(1, preprocess.channels, *preprocess.input_size, device=device)
        with inspection_mode(net), torch.no_grad():
            output = net(zeros)
        if isinstance(output, Tensor) and output.dim() >= 2:
            return int(output.shape[1])
    raise ValueError("this model has no class names and no nn.Linear or nn.Conv2d to count its classes; "
                     "pass class_names= to convscope.Model")


def as_model(model: Model | nn.Module) -> Model:
    """Accept a :class:`Model` or a bare ``nn.Module`` (ImageNet preprocessing, numbered classes)."""
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return Model(model, name=type(model).__name__)
    raise TypeError(f"expected a convscope.Model or a torch.nn.Module, got {type(model).__name__}")
