"""LayerCAM (Jiang et al. 2021, https://ieeexplore.ieee.org/document/9462463)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.cam_base import GradientCAM


class LayerCAM(GradientCAM):
    """``Σ_k ReLU(dS/dA_k) ⊙ A_k``: every position weighted by its own positive gradient.

    Works at shallow layers too, where Grad-CAM's averaged weights blur. Raw map ``[B,1,h,w]``.
    """

    name = "layer_cam"
    title = "LayerCAM"
    paper = "https://ieeexplore.ieee.org/document/9462463"

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """ReLU(∂y/∂A_k) ⊙ A_k: each position weighted by its own positive gradient."""
        return grads.clamp_min(0) * activations
