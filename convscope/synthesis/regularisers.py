"""Regularisers: penalties added to the objective, and the between-step tricks of the seeds.

Penalties (≥ 0, subtract them): :func:`l2` (Simonyan et al.'s λ‖I‖²), :func:`l1`,
:func:`total_variation` (Mahendran & Vedaldi's TV^β). They read the images before
the robustness transforms, centred on the model's mean colour and divided by its std.

Step rules act on the pixels after each optimiser step (Yosinski et al., 2015,
https://arxiv.org/abs/1506.06579): :class:`Blur`, :class:`Decay`, :class:`ClipNorm`,
:class:`ClipContribution`. They need a pixel parameterisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.synthesis.objectives import Evaluation, Objective


def _centred(e: Evaluation) -> Tensor:
    return (e.images - e.mean) / e.std


def l2() -> Objective:
    """‖I‖² of the mean-subtracted, std-scaled image, summed over pixels and channels."""
    return Objective(lambda e: _centred(e).pow(2).flatten(1).sum(1), (), "‖I‖²", reads_output=False)


def l1() -> Objective:
    """‖I‖₁ of the mean-subtracted, std-scaled image."""
    return Objective(lambda e: _centred(e).abs().flatten(1).sum(1), (), "‖I‖₁", reads_output=False)


def total_variation(beta: float = 2.0) -> Objective:
    """Mahendran & Vedaldi's TV^β: the mean over pixels of ‖∇I‖^β (colour gradients, forward differences).

    β = 1 is the classic total variation; β = 2 (the default) smooths more evenly;
    larger β removes spikes. Images are scaled to the model's input units.
    Paper: https://arxiv.org/abs/1412.0035
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")

    def value(e: Evaluation) -> Tensor:
        x = _centred(e)
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
        squared = (dx.pow(2) + dy.pow(2)).sum(1)
        return (squared + 1e-8).pow(beta / 2).flatten(1).mean(1)

    return Objective(value, (), f"TV^{beta:g}", reads_output=False)


class StepRule:
    """Changes the pixels in place after an optimiser step.

    ``pixels`` ``[B,3,H,W]`` in [0, 1]; ``grad`` the loss gradient at the pixels
    (or ``None``); ``centre`` the model's mean colour ``[1,3,1,1]``; ``step`` counts from 0.
    """

    def __call__(self, pixels: Tensor, grad: Tensor | None, centre: Tensor, step: int) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Blur(StepRule):
    """Gaussian blur of width ``sigma`` pixels every ``every`` steps (removes high frequencies)."""

    sigma: float = 1.0
    every: int = 4

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.every < 1:
            raise ValueError(f"Blur needs sigma > 0 and every ≥ 1, got sigma={self.sigma}, every={self.every}")

    def __call__(self, pixels: Tensor, grad: Tensor | None, centre: Tensor, step: int) -> None:
        if (step + 1) % self.every == 0:
            pixels.copy_(gaussian_blur(pixels, self.sigma))


@dataclass(frozen=True)
class Decay(StepRule):
    """Pull every pixel towards the mean colour by the fraction ``rate`` (L2 decay)."""

    rate: float = 0.01

    def __call__(self, pixels: Tensor, grad: Tensor | None, centre: Tensor, step: int) -> None:
        pixels.sub_(centre).mul_(1 - self.rate).add_(centre)


@dataclass(frozen=True)
class ClipNorm(StepRule):
    """Set the pixels whose colour norm (from the mean colour) is below the ``percentile`` to the mean."""

    percentile: float = 10.0

    def __call__(self, pixels: Tensor, grad: Tensor | None, centre: Tensor, step: int) -> None:
        norms = (pixels - centre).norm(dim=1)
        _reset_below(pixels, norms, self.percentile, centre)


@dataclass(frozen=True)
class ClipContribution(StepRule):
    """Set the pixels whose contribution |Σ_c (x − mean)·∂/∂x| is below the ``percentile`` to the mean."""

    percentile: float = 10.0

    def __call__(self, pixels: Tensor, grad: Tensor | None, centre: Tensor, step: int) -> None:
        if grad is None:
            return
        contribution = ((pixels - centre) * grad).sum(1).abs()
        _reset_below(pixels, contribution, self.percentile, centre)


def _reset_below(pixels: Tensor, scores: Tensor, percentile: float, centre: Tensor) -> None:
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    if percentile == 0:
        return
    limit = torch.quantile(scores.flatten(1).float(), percentile / 100, dim=1).to(scores)
    small = (scores < limit.view(-1, 1, 1))[:, None]
    pixels.copy_(torch.where(small, centre.expand_as(pixels), pixels))


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[B,C,H,W]`` with replicated borders (radius ⌈3σ⌉)."""
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    horizontal = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(horizontal, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
