"""Saliency maps (Simonyan, Vedaldi & Zisserman 2014, https://arxiv.org/abs/1312.6034)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.base import Attribution, input_gradient
from convscope.targets import Target


class Saliency(Attribution):
    """``max_c |d S / d x_c|``: the gradient of the unnormalised class score, absolute, max over colour.

    Returns ``[B,1,H,W]``. The class score is the logit (give a class index or name);
    the gradient is taken at the model's input (the normalised pixels).
    """

    takes_forward_args = True

    name = "saliency"
    title = "Saliency"
    paper = "https://arxiv.org/abs/1312.6034"
    style = "saliency"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        return input_gradient(self.model, inputs, target).abs().amax(1, keepdim=True)
