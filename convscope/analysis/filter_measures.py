"""Two numbers that make Zeiler & Fergus's first-layer diagnosis measurable (https://arxiv.org/abs/1311.2901, §4.1,
Fig. 6): "dead" filters that learnt nothing, and filters dominated by high frequencies (aliasing of a large stride).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _filters(weight: Tensor) -> Tensor:
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"convolution weights are [out, in, kh, kw], got {shape}")
    return weight.detach().float().cpu()


def near_zero_filters(weight: Tensor, relative: float = 0.1) -> Tensor:
    """``[out]`` booleans: filters whose L2 norm is below ``relative`` × the layer's largest filter norm."""
    if not 0 < relative < 1:
        raise ValueError(f"relative must be between 0 and 1, got {relative}")
    norms = _filters(weight).flatten(1).norm(dim=1)
    return norms < relative * norms.max()


def high_frequency_energy(weight: Tensor, cutoff: float = 0.5) -> Tensor:
    """``[out]``: each filter's share of spectral energy above ``cutoff`` × the Nyquist frequency.

    The energy is |DFT|² of each kh×kw kernel (summed over input channels); a frequency's radius is
    √(fx² + fy²) / 0.5 with fx, fy in cycles per pixel, so 1 is Nyquist along one axis. A constant filter
    gives 0, a ±1 checkerboard 1. All-zero filters give 0.
    """
    if not 0 <= cutoff < 1.5:
        raise ValueError(f"cutoff is a share of the Nyquist frequency, between 0 and 1.41, got {cutoff}")
    w = _filters(weight)
    power = torch.fft.fft2(w).abs().pow(2).sum(1)  # [out, kh, kw]
    fy = torch.fft.fftfreq(w.shape[-2]).view(-1, 1)
    fx = torch.fft.fftfreq(w.shape[-1]).view(1, -1)
    radius = (fy ** 2 + fx ** 2).sqrt() / 0.5
    high = (power * (radius > cutoff)).flatten(1).sum(1)
    total = power.flatten(1).sum(1)
    return torch.where(total > 0, high / total.clamp_min(1e-30), torch.zeros_like(total))
