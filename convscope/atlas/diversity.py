"""Lucid's diversity term, within groups: pictures of one group are pushed apart in style (the Gram matrix of a
layer's activations), so that each shows another facet of the same unit.

Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017,
https://distill.pub/2017/feature-visualization/#diversity (``objectives.diversity`` in Lucid): the cosine
similarity of the pictures' Gram matrices, penalised. Lucid penalises it across the whole batch; here each
channel's facets form their own group, so many channels' facets share one batch without influencing each other.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_similarity(activations: Tensor, group_size: int) -> Tensor:
    """Per picture ``[B]``: the mean cosine similarity of its Gram matrix to those of the other pictures of its group.

    ``activations`` ``[B,C,H,W]`` or ``[B,C]``; consecutive runs of ``group_size`` pictures form a group
    (``B`` a multiple of it, ``group_size`` ≥ 2).
    """
    if group_size < 2 or activations.shape[0] % group_size:
        raise ValueError(f"{activations.shape[0]} pictures do not form groups of {group_size} (at least 2)")
    flat = activations.reshape(activations.shape[0], activations.shape[1], -1).float()
    grams = (flat @ flat.transpose(1, 2)).flatten(1)
    grams = grams / grams.norm(dim=1, keepdim=True).clamp_min(1e-10)
    grouped = grams.view(-1, group_size, grams.shape[1])
    similarity = grouped @ grouped.transpose(1, 2)  # [groups, F, F]
    others = similarity.sum(-1) - similarity.diagonal(dim1=1, dim2=2)
    return (others / (group_size - 1)).reshape(-1)


def reference_similarity(activations: Tensor, group_size: int) -> Tensor:
    """:func:`group_similarity` written as Lucid writes it (two loops), for tests."""
    flat = activations.reshape(activations.shape[0], activations.shape[1], -1).double()
    grams = [f @ f.T for f in flat]
    grams = [g / g.norm().clamp_min(1e-10) for g in grams]
    values = []
    for i in range(len(grams)):
        start = i - i % group_size
        others = [float((grams[i] * grams[j]).sum()) for j in range(start, start + group_size) if j != i]
        values.append(sum(others) / len(others))
    return torch.tensor(values, dtype=torch.float64)
