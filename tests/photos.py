"""Small batches of the bundled photos for quick tests on the embedded model."""

from __future__ import annotations

import torch

from convscope.images import load_sample
from convscope.models import Preprocess


def small_inputs(model, size: int = 64) -> torch.Tensor:
    """chelsea and coffee at ``size`` pixels, normalised for ``model``."""
    pre = model.preprocess
    return Preprocess(resize=size, crop=size, mean=pre.mean, std=pre.std)([load_sample("chelsea"),
                                                                          load_sample("coffee")])
