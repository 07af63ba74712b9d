"""Grad-CAM element-wise (pytorch-grad-cam's variant of HiResCAM, https://github.com/jacobgil/pytorch-grad-cam)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.cam_base import GradientCAM


class GradCAMElementWise(GradientCAM):
    """``Σ_k ReLU(dS/dA_k ⊙ A_k)``: HiResCAM's products, each rectified before the channel sum, ``[B,1,h,w]``.

    Channels that speak against the class at a position cannot cancel those that speak for it.
    """

    name = "grad_cam_element_wise"
    title = "Grad-CAM element-wise"
    paper = "https://arxiv.org/abs/2011.08891"

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """ReLU(∂y/∂A_k ⊙ A_k), position by position."""
        return (grads * activations).clamp_min(0)
