"""XGrad-CAM (Fu et al. 2020, https://arxiv.org/abs/2008.02312)."""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.attribution.cam_base import GradientCAM


class XGradCAM(GradientCAM):
    """``Σ_k w_k A_k`` with ``w_k = Σ_ij A_k,ij · dS/dA_k,ij / Σ_ij A_k,ij``: gradients averaged with the
    activations as weights (the paper's axioms of sensitivity and conservation), ``[B,1,h,w]``.

    A channel whose activations sum to 0 gets weight 0. pytorch-grad-cam adds ``epsilon = 1e-7`` to
    the sum instead; a subclass can set ``epsilon`` to do the same.
    """

    name = "xgrad_cam"
    title = "XGrad-CAM"
    paper = "https://arxiv.org/abs/2008.02312"
    epsilon = 0.0

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """w_k · A_k with w_k = Σ A_k ∂y/∂A_k / Σ A_k."""
        total = activations.sum((2, 3), keepdim=True) + self.epsilon
        products = (grads * activations).sum((2, 3), keepdim=True)
        weights = torch.where(total != 0, products / torch.where(total != 0, total, 1), 0)
        return weights * activations
