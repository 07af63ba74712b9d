"""How many perturbed pictures go through the model at once when a study evaluates many of them."""

from __future__ import annotations

import torch

# On a CPU a pass is fastest when its activations stay in cache: four 224×224 pictures per pass ran the
# deletion curves of EfficientNet-Lite0 1.9× faster than 64 (benchmarks/metrics.py measures it again).
CPU_PIXELS_PER_PASS = 4 * 224 * 224


def pictures_per_pass(batch_size: int | None, shape: torch.Size | tuple[int, ...], device: torch.device) -> int:
    """``batch_size``, or the default for pictures of ``shape`` ``[...,H,W]``: as many as hold
    :data:`CPU_PIXELS_PER_PASS` pixels on a CPU (at least one, at most 64), 64 on an accelerator."""
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return batch_size
    if torch.device(device).type != "cpu":
        return 64
    return max(1, min(64, CPU_PIXELS_PER_PASS // (shape[-2] * shape[-1])))
