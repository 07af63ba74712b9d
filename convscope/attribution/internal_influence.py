"""Internal Influence (Leino et al. 2018, https://arxiv.org/abs/1802.03788)."""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.attribution.layer_path import PathAttribution
from convscope.targets import Target


class InternalInfluence(PathAttribution):
    """``(1/m) Σ_{k=1..m} ∂S/∂A(x' + k/m · (x − x'))``: the layer's gradient averaged along the path, ``[B,C,h,w]``.

    Integrated Gradients' integral taken at the layer and not multiplied by anything: how much the
    score moves per unit of each activation, on average between the baseline and the input.
    The same right Riemann sum as :class:`~convscope.attribution.IntegratedGradients`; equal to
    Captum's ``InternalInfluence`` with ``method='riemann_right'``.
    """

    name = "internal_influence"
    title = "Internal Influence"
    paper = "https://arxiv.org/abs/1802.03788"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        total = None
        alphas = torch.arange(1, self.steps + 1, dtype=torch.float64) / self.steps
        for images, _, found in self.passes(inputs, target, alphas):
            if total is None:
                total = torch.zeros(inputs.shape[0], *found.grads.shape[1:], device=inputs.device)
            total.index_add_(0, images, found.grads.float())
        assert total is not None, "steps ≥ 1: one pass at least"
        (maps,) = self.feature_maps(inputs, total / self.steps)
        return maps.to(inputs.dtype)
