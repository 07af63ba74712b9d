"""Guided Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391)."""

from __future__ import annotations

from torch import Tensor, nn

from convscope.attribution.cam_base import LayerAttribution
from convscope.attribution.grad_cam import GradCAM
from convscope.attribution.guided_backprop import GuidedBackprop
from convscope.models.model import Model
from convscope.models.tokens import Reshape
from convscope.render.overlay import upsample
from convscope.targets import Target


class GuidedGradCAM(LayerAttribution):
    """Guided backprop times the Grad-CAM map (ReLU'd, bilinearly upsampled), pointwise: ``[B,C,H,W]``.

    High-resolution like guided backprop, class-discriminative like Grad-CAM.
    """

    name = "guided_grad_cam"
    title = "Guided Grad-CAM"
    paper = "https://arxiv.org/abs/1610.02391"
    style = "image"
    _parts: tuple[GradCAM, GuidedBackprop] | None = None

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *,
                 reshape: Reshape | None = None) -> None:
        super().__init__(model, layer, reshape=reshape)  # no aug_smooth: it would rectify the signed gradients

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        if self._parts is None:  # made once: a method per call would look the layer up again
            self._parts = GradCAM(self.model, self.layer(inputs), reshape=self.reshape), GuidedBackprop(self.model)
        cam, guided = (part._attribute(inputs, target) for part in self._parts)
        return guided * upsample(cam.clamp_min(0), tuple(inputs.shape[-2:])).to(guided.dtype)
