"""EigenGrad-CAM (pytorch-grad-cam's class-discriminative Eigen-CAM, https://arxiv.org/abs/2008.00299)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.cam_base import GradientCAM
from convscope.attribution.eigen import first_component


class EigenGradCAM(GradientCAM):
    """The first principal component of ``dS/dA ⊙ A`` (HiResCAM's per-channel products), ``[B,1,h,w]``.

    Eigen-CAM made class-specific by the gradient; the sign agrees with HiResCAM's map.
    """

    name = "eigen_grad_cam"
    title = "EigenGrad-CAM"
    paper = "https://arxiv.org/abs/2008.00299"

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """∂y/∂A_k ⊙ A_k, position by position."""
        return grads * activations

    def combine(self, activations: Tensor, grads: Tensor) -> Tensor:
        """The first principal component of the products (``eigen_smooth`` changes nothing)."""
        return first_component(self.weighted(activations, grads))
