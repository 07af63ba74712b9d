"""An order of a layer's channels that puts similar ones side by side (Microscope's layer grid, sorted by
similarity): the spectral seriation of their similarity matrix — channels sorted by the Fiedler vector of its
graph Laplacian (Atkins, Boman & Hendrickson, "A spectral algorithm for seriation", 1998,
https://doi.org/10.1137/S0097539795285771)."""

from __future__ import annotations

import torch
from torch import Tensor


def similarity_order(rows: Tensor) -> list[int]:
    """Channel indices ordered so that channels with correlated ``rows`` ``[C,D]`` (one descriptor per channel:
    its activation over pictures) lie next to each other; constant rows count as unrelated to all."""
    count = rows.shape[0]
    if count <= 2:
        return list(range(count))
    centred = rows.double() - rows.double().mean(1, keepdim=True)
    norms = centred.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 1e-12, centred / norms.clamp_min(1e-12), torch.zeros_like(centred))
    affinity = (unit @ unit.T).clamp_min(0)  # correlation; anti-correlated channels are not neighbours
    affinity.fill_diagonal_(0)
    laplacian = torch.diag(affinity.sum(1)) - affinity
    _, vectors = torch.linalg.eigh(laplacian + 1e-9 * torch.eye(count, dtype=laplacian.dtype))
    fiedler = vectors[:, 1]
    if fiedler[fiedler.abs().argmax()] < 0:  # an eigenvector's sign is arbitrary: fix it
        fiedler = -fiedler
    return torch.argsort(fiedler, stable=True).tolist()
