"""Guided backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806)."""

from __future__ import annotations

from torch import Tensor

from convscope.attribution.base import Attribution, input_gradient
from convscope.targets import Target


class GuidedBackprop(Attribution):
    """The gradient with only positive signals passed back through positive activations.

    At every rectifier the backward signal is ``f'(x) · max(g, 0)`` (see
    :mod:`convscope.backward_rules`, which also covers ReLU6, leaky ReLUs and SiLU/GELU/Hardswish/Mish,
    and refuses what the forward pass computes without a rule: ELU, a hidden Tanh, a hand-written
    ``x * sigmoid(x)``). Returns signed colour maps ``[B,C,H,W]``.
    """

    takes_forward_args = True

    name = "guided_backprop"
    title = "Guided backprop"
    paper = "https://arxiv.org/abs/1412.6806"
    style = "image"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        return input_gradient(self.model, inputs, target, rule="guided")
