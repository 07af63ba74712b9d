"""Class activation maps from a layer's activations and gradients (Grad-CAM, Grad-CAM++, LayerCAM)."""

from __future__ import annotations

from torch import Tensor, nn

from convscope.attribution.base import Attribution, layer_gradient
from convscope.attribution.layers import LayerChoice
from convscope.models.model import Model
from convscope.targets import Target


class LayerAttribution(Attribution):
    """A method that reads one layer; ``layer=None`` takes the last spatial layer (``bn2`` on EfficientNet-Lite)."""

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None) -> None:
        super().__init__(model)
        self._layer = LayerChoice(self.model, layer)

    def layer(self, inputs: Tensor) -> str:
        """The layer's name (found on ``inputs`` when none was given)."""
        return self._layer.name(inputs)


class GradientCAM(LayerAttribution):
    """Base of the gradient-weighted maps: ``combine(A, dS/dA) -> [B,1,h,w]``, raw (signed, layer resolution)."""

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        found = layer_gradient(self.model, inputs, target, self.layer(inputs))
        activations, grads = found.activations, found.grads
        if activations.dim() != 4:
            raise ValueError(f"{self.title} needs a layer with feature maps [B,C,h,w]; layer "
                             f"{self.layer(inputs)!r} gives {tuple(activations.shape)}")
        return self.combine(activations.float(), grads.float())

    def combine(self, activations: Tensor, grads: Tensor) -> Tensor:
        raise NotImplementedError
