"""Draws from a seeded ``torch.Generator``, on the generator's own device, as Python numbers."""

from __future__ import annotations

import torch


def draw_index(count: int, generator: torch.Generator) -> int:
    """A uniform integer in ``0 … count − 1``."""
    return int(torch.randint(count, (1,), generator=generator, device=generator.device).item())
