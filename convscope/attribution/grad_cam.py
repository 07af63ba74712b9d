"""Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.cam_base import GradientCAM


class GradCAM(GradientCAM):
    """``Σ_k α_k A_k`` with ``α_k`` the spatial mean of ``dS/dA_k``, at any convolutional layer.

    Returns the raw, signed map ``[B,1,h,w]`` at the layer's resolution; :meth:`heat`
    applies the paper's ReLU and upsamples bilinearly for display. On a network that
    ends in global average pooling and one linear layer, Grad-CAM at the pooled layer
    is CAM divided by ``h·w``.
    """

    name = "grad_cam"
    title = "Grad-CAM"
    paper = "https://arxiv.org/abs/1610.02391"

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """mean(∂y/∂A_k) · A_k: each channel's share of Grad-CAM's map before the ReLU."""
        return grads.mean((2, 3), keepdim=True) * activations
