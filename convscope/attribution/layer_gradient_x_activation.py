"""Layer Gradient × Activation (Captum's LayerGradientXActivation; Shrikumar et al. 2016 at a layer,
https://arxiv.org/abs/1605.01713)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.base import fast_layout, layer_gradient
from convscope.attribution.batch_norm_folding import norms_folded
from convscope.attribution.layer_path import ActivationAttribution
from convscope.hooks import inspection_mode
from convscope.targets import Target


class LayerGradientXActivation(ActivationAttribution):
    """``A ⊙ ∂S/∂A`` at the layer, signed, ``[B,C,h,w]``; one forward and backward pass.

    Its sum over channels is HiResCAM's map. Equal to Captum's ``LayerGradientXActivation``.
    """

    name = "layer_gradient_x_activation"
    title = "Layer Gradient × Activation"
    paper = "https://arxiv.org/abs/1605.01713"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        layer, net = self.layer(inputs), self.model.net
        with inspection_mode(net, grad_params=None), \
                norms_folded(net, fast_layout(inputs[:1]), [layer, *target.layers]):  # the same function, faster
            found = layer_gradient(self.model, inputs, target, layer)
        (maps,) = self.feature_maps(inputs, found.activations.float() * found.grads.float())
        return maps.to(inputs.dtype)
