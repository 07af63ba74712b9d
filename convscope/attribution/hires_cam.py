"""HiResCAM (Draelos & Carin 2020, https://arxiv.org/abs/2011.08891)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.cam_base import GradientCAM


class HiResCAM(GradientCAM):
    """``Σ_k dS/dA_k ⊙ A_k``: Grad-CAM without the spatial averaging of the gradients, signed, ``[B,1,h,w]``.

    When the layer is followed only by linear layers (and global pooling) the map is exactly
    how much each position adds to the score, which Grad-CAM's averaged weights do not guarantee.
    """

    name = "hires_cam"
    title = "HiResCAM"
    paper = "https://arxiv.org/abs/2011.08891"

    def weighted(self, activations: Tensor, grads: Tensor) -> Tensor:
        """∂y/∂A_k ⊙ A_k, position by position."""
        return grads * activations
