"""Layer Conductance (Dhamdhere, Sundararajan & Yan 2018, https://arxiv.org/abs/1805.12233)."""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.attribution.layer_path import PathAttribution
from convscope.targets import Target


class LayerConductance(PathAttribution):
    """``Σ_k ∂S/∂A(x_k) ⊙ (A(x_{k+1}) − A(x_k))`` over ``x_k = x' + k/m · (x − x')``, ``k = 0 … m−1``: ``[B,C,h,w]``.

    How much of Integrated Gradients' total flows through each activation of the layer; summed
    over the layer it tends to ``S(x) − S(x')`` as ``steps`` = m grows. ``m + 1`` points per image.
    Equal to Captum's ``LayerConductance`` with ``method='riemann_trapezoid'`` (whose points are
    these; its other quadratures skip the path's first or last piece).
    """

    name = "layer_conductance"
    title = "Layer Conductance"
    paper = "https://arxiv.org/abs/1805.12233"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        total = previous = None
        alphas = torch.arange(self.steps + 1, dtype=torch.float64) / self.steps
        for images, steps, found in self.passes(inputs, target, alphas):
            activations, grads = found.activations.float(), found.grads.float()
            if total is None or previous is None:  # set together, on the first pass
                total = torch.zeros(inputs.shape[0], *activations.shape[1:], device=inputs.device)
                previous = torch.zeros_like(total)  # ∂S/∂A at each image's previous point
            for step in torch.unique(steps).tolist():  # within one step the images differ
                rows = steps == step
                image = images[rows]
                if step > 0:
                    total.index_add_(0, image, previous[image] * activations[rows])
                if step < self.steps:
                    total.index_add_(0, image, -grads[rows] * activations[rows])
                    previous[image] = grads[rows]
        assert total is not None, "steps ≥ 1: one pass at least"
        (maps,) = self.feature_maps(inputs, total)
        return maps.to(inputs.dtype)
