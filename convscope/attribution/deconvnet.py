"""The deconvnet of Zeiler & Fergus 2014 (https://arxiv.org/abs/1311.2901)."""

from __future__ import annotations

from torch import Tensor, nn

from convscope.attribution.base import Attribution, input_gradient
from convscope.targets import Target


class Deconvnet(Attribution):
    """Projects a target back to pixels through the deconvnet.

    Going down, the deconvnet *unpools* with the switches recorded by max-pooling in
    the forward pass — exactly max-pooling's ordinary backward —, *rectifies* the
    backward signal with a ReLU (whatever the forward activation was; this is what
    makes it differ from guided backprop, which also masks by the forward pass) and
    *filters* with the transposed filters — a convolution's ordinary backward. Biases
    are not used. Returns signed colour maps ``[B,C,H,W]``.

    :meth:`project` is the paper's way to look at one feature map: keep that map's
    activations, set every other activation of the layer to zero, and pass the result down.

    Without max-pooling the map is the same for every picture (``may_ignore_pictures``; see
    :mod:`convscope.attribution.picture_independence`).
    """

    takes_forward_args = True

    name = "deconvnet"
    title = "Deconvnet"
    paper = "https://arxiv.org/abs/1311.2901"
    style = "image"
    may_ignore_pictures = True

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        return input_gradient(self.model, inputs, target, rule="deconvnet")

    def project(self, inputs: Tensor, layer: str | nn.Module, channel: int, *, strongest: bool = False) -> Tensor:
        """Feature map ``channel`` of ``layer`` (all others zeroed) projected to pixels, ``[B,C,H,W]``.

        With ``strongest`` only the map's largest activation is kept (the paper's
        projections of single top activations).
        """
        from convscope.attribution.feature_projection import project_feature_map

        return project_feature_map(self.model, inputs, layer, channel, strongest=strongest)
