"""Grad-CAM++ (Chattopadhay et al. 2018, https://arxiv.org/abs/1710.11063)."""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.attribution.cam_base import GradientCAM


class GradCAMPlusPlus(GradientCAM):
    """``Σ_k w_k A_k`` with ``w_k = Σ_ij α_ij ReLU(g_ij)`` and ``α = g² / (2g² + Σ_ab A_ab g³)``.

    ``g = dS/dA`` is the gradient of the class score; this is the paper's closed form
    for the exponentiated score, up to its positive per-image factor ``exp(S)``, which
    does not change the map's shape. ``α`` is 0 where ``g`` is 0. Raw map ``[B,1,h,w]``.
    """

    name = "grad_cam_plus_plus"
    title = "Grad-CAM++"
    paper = "https://arxiv.org/abs/1710.11063"

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """Channel weights Σ α·ReLU(∂y/∂A) with the closed-form α of Grad-CAM++ (exp of the score), times the
        activations."""
        squared = grads.pow(2)
        denominator = 2 * squared + activations.sum((2, 3), keepdim=True) * grads.pow(3)
        alpha = torch.where(grads != 0, squared / torch.where(denominator != 0, denominator, 1), 0)
        weights = (alpha * grads.clamp_min(0)).sum((2, 3), keepdim=True)
        return weights * activations
