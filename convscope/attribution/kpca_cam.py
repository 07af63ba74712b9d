"""KPCA-CAM (Karmani et al. 2024, https://arxiv.org/abs/2410.00267)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from convscope.attribution.base import folded_forward
from convscope.attribution.cam_base import LayerAttribution
from convscope.attribution.eigen import agreeing_sign
from convscope.models.model import Model
from convscope.models.tokens import Reshape
from convscope.targets import Target

KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")


class KPCACAM(LayerAttribution):
    """Eigen-CAM with kernel PCA: each position's channel vector projected on the first kernel principal
    component of the layer's activations, ``[B,1,h,w]``; no gradient, no class.

    As pytorch-grad-cam's ``KPCA_CAM`` (scikit-learn's ``KernelPCA(n_components=1)`` on the
    positions' centred channel vectors): ``kernel`` is ``'sigmoid'`` (its default, tanh(γ x·y + 1)),
    ``'rbf'`` (exp(−γ |x−y|²)), ``'poly'`` ((γ x·y + 1)³), ``'linear'`` (Eigen-CAM itself) or
    ``'cosine'``; ``gamma`` defaults to 1 / channels. The map is the top eigenvector of the centred
    kernel matrix times the square root of its eigenvalue, computed in float64; its sign is chosen
    to agree with the summed activations, as :class:`~convscope.attribution.eigen_cam.EigenCAM`'s.
    """

    name = "kpca_cam"
    title = "KPCA-CAM"
    paper = "https://arxiv.org/abs/2410.00267"

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *,
                 reshape: Reshape | None = None, kernel: str = "sigmoid", gamma: float | None = None,
                 aug_smooth: bool = False) -> None:
        super().__init__(model, layer, reshape=reshape, aug_smooth=aug_smooth)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)} (scikit-learn's names), got {kernel!r}")
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, int | float)
                                  or not math.isfinite(gamma) or gamma <= 0):
            raise ValueError(f"gamma must be a positive number (or None for 1 / channels), got {gamma!r}")
        self.kernel, self.gamma = kernel, gamma

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        layer = self.layer(inputs)
        _, found = folded_forward(self.model, inputs, [layer])
        (maps,) = self.feature_maps(inputs, found[layer].float())
        return kernel_component(maps, self.kernel, self.gamma)


def kernel_component(maps: Tensor, kernel: str = "sigmoid", gamma: float | None = None) -> Tensor:
    """``[B,C,h,w] -> [B,1,h,w]``: the first kernel principal component of each image's ``h·w`` centred channel
    vectors (scikit-learn's ``KernelPCA(n_components=1).fit_transform``), its sign agreeing with ``maps.sum(1)``."""
    batch, channels, height, width = maps.shape
    rows = maps.double().nan_to_num().flatten(2).transpose(1, 2)  # [B, h·w, C]
    rows = rows - rows.mean(1, keepdim=True)
    matrix = _kernel(rows, kernel, 1.0 / channels if gamma is None else float(gamma))
    matrix = (matrix - matrix.mean(1, keepdim=True) - matrix.mean(2, keepdim=True)
              + matrix.mean((1, 2), keepdim=True))
    values, vectors = torch.linalg.eigh(matrix)
    projection = vectors[:, :, -1] * values[:, -1:].clamp_min(0).sqrt()  # [B, h·w]
    projection = projection * agreeing_sign(projection, maps)[:, None]
    return projection.reshape(batch, 1, height, width).to(maps.dtype)


def _kernel(rows: Tensor, kernel: str, gamma: float) -> Tensor:
    """scikit-learn's pairwise kernel of the rows ``[B,n,C] -> [B,n,n]`` (its degree 3 and coef0 1)."""
    dots = rows @ rows.transpose(1, 2)
    if kernel == "sigmoid":
        return torch.tanh(gamma * dots + 1)
    if kernel == "poly":
        return (gamma * dots + 1) ** 3
    if kernel == "linear":
        return dots
    if kernel == "rbf":
        squares = dots.diagonal(dim1=1, dim2=2)
        return torch.exp(-gamma * (squares[:, :, None] + squares[:, None, :] - 2 * dots).clamp_min(0))
    norms = rows.norm(dim=2).where(rows.norm(dim=2) > 0, torch.ones((), dtype=rows.dtype, device=rows.device))
    return dots / (norms[:, :, None] * norms[:, None, :])
