"""Seeds that depend only on what is being made, never on how the work was split (batch, process, resume)."""

from __future__ import annotations

import hashlib

import torch


def seeded(*parts: object) -> torch.Generator:
    """A CPU generator seeded by a digest of ``parts`` (e.g. the run's seed, a layer and a channel)."""
    text = "/".join(str(part) for part in parts)
    return torch.Generator().manual_seed(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "big"))
