"""Class activation maps from a layer's activations and gradients (Grad-CAM, Grad-CAM++, LayerCAM …)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.aug_smooth import check_aug_smooth
from convscope.attribution.base import Attribution, batch_size_for, layer_gradient
from convscope.attribution.eigen import first_component
from convscope.attribution.input_checks import check_map_size
from convscope.attribution.layers import LayerChoice, layer_grid
from convscope.models.model import Model
from convscope.models.tokens import Reshape
from convscope.targets import Target


class LayerAttribution(Attribution):
    """A method that reads one layer as feature maps ``[B,C,h,w]``.

    ``layer=None`` takes the default layer of :func:`~convscope.attribution.layers.last_spatial_layer`
    (``bn2`` on EfficientNet-Lite, ``blocks.11.norm1`` on ViT-S/16). Channels-last maps and
    patch tokens are put on their grid (:mod:`convscope.models.tokens`); ``reshape``, a callable
    ``layer output -> [B,C,h,w]`` as pytorch-grad-cam's ``reshape_transform``, does it for other layouts.
    ``aug_smooth=True`` averages the maps of mirrored and brightened copies (:mod:`~convscope.attribution.aug_smooth`).
    """

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *,
                 reshape: Reshape | None = None, aug_smooth: bool = False) -> None:
        super().__init__(model)
        self.aug_smooth = check_aug_smooth(aug_smooth)
        if reshape is not None and layer is None:
            raise ValueError("reshape= needs layer=: name the layer whose output it turns into [B,C,h,w]")
        if reshape is not None and not callable(reshape):
            raise TypeError(f"reshape= must be a callable (layer output -> [B,C,h,w]), got {type(reshape).__name__}")
        self._layer = LayerChoice(self.model, layer)
        self.reshape = reshape

    def layer(self, inputs: Tensor) -> str:
        """The layer's name (found on ``inputs`` when none was given)."""
        return self._layer.name(inputs)

    def feature_maps(self, inputs: Tensor, *outputs: Tensor) -> list[Tensor]:
        """The layer's ``outputs`` (activations, gradients) as ``[B,C,h,w]``; a ``ValueError`` when it has no grid."""
        grid = layer_grid(self.model, self.layer(inputs), outputs[0], inputs, self.reshape)
        check_map_size(self.model, self.layer(inputs), inputs, self.title)
        return [grid.maps(output) for output in outputs]


class ChannelSumCAM(LayerAttribution):
    """A CAM whose map is a sum over channels of per-channel maps ``[B,C,h,w]``.

    ``eigen_smooth=True`` (pytorch-grad-cam's option) takes the first principal component of those
    per-channel maps instead of their sum (:func:`~convscope.attribution.eigen.first_component`):
    less noise, but no longer the method's own map.
    """

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *,
                 reshape: Reshape | None = None, eigen_smooth: bool = False, aug_smooth: bool = False) -> None:
        super().__init__(model, layer, reshape=reshape, aug_smooth=aug_smooth)
        if not isinstance(eigen_smooth, bool):
            raise TypeError(f"eigen_smooth= is True or False, got {eigen_smooth!r}")
        self.eigen_smooth = eigen_smooth

    def summed(self, weighted: Tensor) -> Tensor:
        """``[B,C,h,w] -> [B,1,h,w]``: the channel sum, or its first principal component with ``eigen_smooth``."""
        return first_component(weighted) if self.eigen_smooth else weighted.sum(1, keepdim=True)


class ChannelPassCAM(ChannelSumCAM):
    """A CAM that runs the model once more per channel (Score-CAM, Ablation-CAM): ``batch_size`` copies per
    forward pass bound the memory (default: sized for the device), ``progress`` shows a bar over the passes."""

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *,
                 batch_size: int | None = None, progress: bool | None = None, eigen_smooth: bool = False,
                 aug_smooth: bool = False) -> None:
        super().__init__(model, layer, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)
        self.batch_size, self.progress = batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it


class GradientCAM(ChannelSumCAM):
    """Base of the gradient-weighted maps: ``Σ_k weighted(A, dS/dA)_k -> [B,1,h,w]``, raw (signed, layer
    resolution)."""

    takes_forward_args = True

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        found = layer_gradient(self.model, inputs, target, self.layer(inputs))
        activations, grads = self.feature_maps(inputs, found.activations, found.grads)
        return self.combine(activations.float(), grads.float())

    def combine(self, activations: Tensor, grads: Tensor) -> Tensor:
        """The map ``[B,1,h,w]`` from the layer's activations and gradients."""
        return self.summed(self.weighted(activations, grads))

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """Each channel's share of the map, ``[B,C,h,w]``."""
        raise NotImplementedError
