"""Shapley-CAM (Cai 2025, "CAMs as Shapley value-based explainers", https://arxiv.org/abs/2501.06261)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from convscope.attribution.base import fast_layout
from convscope.attribution.cam_base import GradientCAM
from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model
from convscope.targets import Target, check_finite_output


class ShapleyCAM(GradientCAM):
    """``Σ_k w_k A_k`` with ``w_k`` the spatial mean of ``∂S/∂A_k − ½ (H·A)_k``, ``H`` the Hessian of the score
    with respect to the layer's activations ``A``, ``[B,1,h,w]``.

    The second-order term of the Taylor expansion of the score around ``A`` that the paper reads as
    each channel's Shapley value; as pytorch-grad-cam's ``ShapleyCAM``, the Hessian-vector product
    ``H·A`` comes from a second backward pass. Where everything after the layer is piecewise linear
    (ReLU, max-pooling, batch norm, linear) and the target is a logit, ``H = 0`` and the map is
    Grad-CAM's; softmax targets, GELU, attention and LayerNorm make it differ.
    """

    name = "shapley_cam"
    title = "Shapley-CAM"
    paper = "https://arxiv.org/abs/2501.06261"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        activations, grads, hvp = gradient_and_hessian_product(self.model, inputs, target, self.layer(inputs))
        activations, grads, hvp = self.feature_maps(inputs, activations, grads, hvp)
        weights = (grads.float() - 0.5 * hvp.float()).mean((2, 3), keepdim=True)
        return self.summed(weights * activations.float())


def gradient_and_hessian_product(model: Model, inputs: Tensor, target: Target, layer: str
                                 ) -> tuple[Tensor, Tensor, Tensor]:
    """The layer's activations ``A``, the gradient ``∂S/∂A`` and the Hessian-vector product ``(∂²S/∂A²)·A``."""
    net = model.net
    layers = list(dict.fromkeys([layer, *target.layers]))
    # fused attention kernels have no second derivative; the plain one computes the same attention with one
    with inspection_mode(net, grad_params=None), capture(net, layers) as store, sdpa_kernel([SDPBackend.MATH]):
        output = net(fast_layout(inputs.detach()).requires_grad_(True))
        check_finite_output(output, model.name)
        scores = target(output, store.activations)
        activations = store.activation(layer)
        (grads,) = torch.autograd.grad(scores.sum(), activations, create_graph=True, allow_unused=True)
        if grads is None:
            zeros = torch.zeros_like(activations)
            return activations.detach(), zeros, zeros
        hvp = None
        if grads.requires_grad:  # otherwise the score is linear in A after the layer: H = 0
            (hvp,) = torch.autograd.grad(grads, activations, grad_outputs=activations.detach(), allow_unused=True)
    hvp = torch.zeros_like(activations) if hvp is None else hvp
    return activations.detach(), grads.detach(), hvp.detach()
