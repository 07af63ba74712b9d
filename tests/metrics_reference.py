"""A small random-weight CNN, pictures, attributions and masks shared by the tests against Quantus."""

from __future__ import annotations

import math

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv(C→6, 3×3) → ReLU → max-pool 2 → conv(6→8, 3×3) → ReLU → global average pool → linear(8→5)."""

    def __init__(self, channels: int = 1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.classifier = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def reference_batch(count: int = 4, channels: int = 1, side: int = 32, seed: int = 0):
    """``(model, x [B,C,S,S], y [B], a [B,1,S,S], masks [B,1,S,S] bool)``, all seeded."""
    g = torch.Generator().manual_seed(seed)
    model = SmallCNN(channels, seed).eval()
    x = torch.rand(count, channels, side, side, generator=g)
    a = torch.randn(count, 1, side, side, generator=g)
    masks = torch.zeros(count, 1, side, side, dtype=torch.bool)
    for b in range(count):
        top, left = torch.randint(0, side // 2, (2,), generator=g).tolist()
        masks[b, 0, top:top + side // 3, left:left + side // 3 + b] = True
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y, a, masks


def revealing_monotonicity(quantus):
    """Quantus 0.6's ``Monotonicity`` with its reveal corrected: each step copies the picture's own values into
    the next ``features_in_step`` pixels (Quantus 0.6 writes the baseline there again, so its pictures never
    change). Everything else — order, steps, one model call per step, the score — is Quantus' own."""
    import numpy as np

    class RevealingMonotonicity(quantus.Monotonicity):
        def evaluate_batch(self, model, x_batch, y_batch, a_batch, **kwargs):
            if x_batch.shape != a_batch.shape:
                a_batch = np.broadcast_to(a_batch, x_batch.shape)
            count = a_batch.shape[0]
            a_indices = np.argsort(a_batch.reshape(count, -1), axis=1)
            original = x_batch.reshape(count, -1)
            revealed = self.perturb_func(arr=original, indices=a_indices)  # every pixel on the baseline
            rows = np.arange(count)[:, None]
            preds = []
            for step in range(math.ceil(a_indices.shape[1] / self.features_in_step)):
                ix = a_indices[:, step * self.features_in_step:(step + 1) * self.features_in_step]
                revealed = revealed.copy()
                revealed[rows, ix] = original[rows, ix]
                x_input = model.shape_input(revealed.reshape(x_batch.shape), x_batch.shape, channel_first=True,
                                            batched=True)
                preds.append(model.predict(x_input)[np.arange(count), y_batch])
            return np.all(np.diff(np.stack(preds, axis=1)) >= 0, axis=1).tolist()

    return RevealingMonotonicity
