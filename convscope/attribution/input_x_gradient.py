"""Input × Gradient (Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.base import Attribution, input_gradient
from convscope.render.overlay import upsample
from convscope.targets import Target


class InputXGradient(Attribution):
    """``x ⊙ ∂S/∂x``: the gradient times the (normalised) input, signed, ``[B,C,H,W]``.

    On a network of ReLUs and linear layers without biases this is exactly how much each
    pixel adds to the score (it sums to ``S(x)``); with biases it is the first-order term
    of a Taylor expansion at 0. Equal to Captum's ``InputXGradient``.
    """

    takes_forward_args = True

    name = "input_x_gradient"
    title = "Input × Gradient"
    paper = "https://arxiv.org/abs/1605.01713"
    style = "saliency"

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """``|attribution|`` summed over colour channels."""
        return upsample(maps.abs().sum(1), size)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        return inputs * input_gradient(self.model, inputs, target)
