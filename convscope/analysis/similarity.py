"""Similarity of two explanation maps: Spearman rank correlation and SSIM, batched in torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.render.colormaps import normalize


def average_ranks(values: Tensor) -> Tensor:
    """Ranks (1-based) of each row of ``[B,N]``, ties sharing their average rank (as scipy's rankdata)."""
    ranks = torch.empty_like(values, dtype=torch.float64)
    for row, out in zip(values, ranks, strict=True):
        sorted_values, order = row.sort(stable=True)
        _, inverse, counts = torch.unique_consecutive(sorted_values, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        mean_rank = ends - (counts.double() - 1) / 2
        out[order] = mean_rank[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation between maps ``[B,...]`` (one value per map; NaN for a constant map)."""
    if a.shape != b.shape:
        raise ValueError(f"maps to compare must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = average_ranks(a.flatten(1).double()), average_ranks(b.flatten(1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))).float()


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    """The normalised 1-d Gaussian ``[size]``; the 2-d window is its outer product (applied as two passes)."""
    x = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian_mean(maps: Tensor, g: Tensor) -> Tensor:
    """Gaussian-weighted local means of each channel of ``[B,C,H,W]`` over the valid region (separable)."""
    channels = maps.shape[1]
    rows = g.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = g.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return F.conv2d(F.conv2d(maps, rows, groups=channels), cols, groups=channels)


def ssim(a: Tensor, b: Tensor, *, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Structural similarity (Wang et al. 2004) of maps ``[B,H,W]`` with values in [0, data_range].

    Gaussian window, mean over the valid region — the convention of scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``. Maps smaller
    than the window use the largest odd window that fits.
    https://ieeexplore.ieee.org/document/1284395
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim needs two [B,H,W] maps of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    side = min(a.shape[-2:])
    if side < 3:
        raise ValueError(f"maps of {tuple(a.shape[-2:])} are too small for SSIM (at least 3×3)")
    window = min(window, side if side % 2 else side - 1)  # small maps: the largest odd window that fits
    x, y = a[:, None].double(), b[:, None].double()
    means = _gaussian_mean(torch.cat([x, y, x * x, y * y, x * y], 1), _gaussian_window(window, sigma, a.device))
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = means.split(1, dim=1)
    var_x = mean_xx - mu_x**2
    var_y = mean_yy - mu_y**2
    cov = mean_xy - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.mean((1, 2, 3)).float()


def map_similarity(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Spearman rank correlation and SSIM of each pair of maps ``[B,H,W]`` (one value per map each);
    SSIM compares the maps scaled to [0, 1] by their own minimum and maximum."""
    return spearman(a, b), ssim(normalize(a, "minmax"), normalize(b, "minmax"))
