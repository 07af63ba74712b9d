"""Training-time defences against fooling, beside adversarial training (the lectures' list of fixes).

- ``noise``: train on pictures with Gaussian pixel noise (σ, clipped to [0, 1]) — "adding noise to training"
  (a data augmentation; Zantedeschi et al. 2017, https://arxiv.org/abs/1707.06728, and Gaussian data
  augmentation in Cohen et al. 2019, https://arxiv.org/abs/1902.02918).
- ``representation``: "forcing perturbed images to give similar representations at several levels": the
  cross-entropy of the clean picture plus a weight times the relative squared distance between the features of
  a PGD-perturbed picture and of the clean one at chosen layers (feature matching in the manner of adversarial
  logit pairing, Kannan et al. 2018, https://arxiv.org/abs/1803.06373, extended to hidden layers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.models.layers import get_layer

DEFENCES = ("adversarial", "noise", "representation")


def noisy_pixels(pixels: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """``pixels`` in [0, 1] plus Gaussian noise of standard deviation ``std``, clipped back to [0, 1]."""
    noise = torch.randn(pixels.shape, generator=generator, device=pixels.device, dtype=pixels.dtype)
    return (pixels + std * noise).clamp(0, 1)


def representation_matching_loss(net: nn.Module, clean: Tensor, perturbed: Tensor, labels: Tensor,
                                 layers: Sequence[str], weight: float) -> Tensor:
    """Cross-entropy on ``clean`` + ``weight`` × mean over ``layers`` of ‖φ(perturbed) − φ(clean)‖² / ‖φ(clean)‖²
    (both batches normalised inputs, one forward pass; the clean features are not detached, so both move)."""
    if not layers:
        raise ValueError("representation matching needs at least one layer (e.g. relu2 relu3 relu7)")
    features: dict[str, Tensor] = {}
    handles = [get_layer(net, name).register_forward_hook(
        lambda module, inputs, output, name=name: features.__setitem__(name, output)) for name in layers]
    try:
        logits = net(torch.cat([clean, perturbed]))
    finally:
        for handle in handles:
            handle.remove()
    count = len(clean)
    matching = torch.zeros((), device=clean.device)
    for name in layers:
        a, b = features[name][:count], features[name][count:]
        matching = matching + (b - a).square().sum() / a.square().sum().clamp_min(1e-12)
    return F.cross_entropy(logits[:count], labels) + weight * matching / len(layers)
