"""Eigen-CAM (Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.base import forward
from convscope.attribution.cam_base import LayerAttribution
from convscope.attribution.eigen import first_component
from convscope.targets import Target


class EigenCAM(LayerAttribution):
    """The first principal component of the layer's activations, ``[B,1,h,w]``; no gradient, no class.

    The same map whatever the target (the paper's point: what the layer sees most strongly);
    its sign is chosen to agree with the summed activations (:func:`~convscope.attribution.eigen.first_component`).
    """

    name = "eigen_cam"
    title = "Eigen-CAM"
    paper = "https://arxiv.org/abs/2008.00299"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        layer = self.layer(inputs)
        _, found = forward(self.model, inputs, [layer])
        (maps,) = self.feature_maps(inputs, found[layer].float())
        return first_component(maps)
