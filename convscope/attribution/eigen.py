"""The first principal component of a layer's per-channel maps (Eigen-CAM, Muhammad & Yeasin 2020,
https://arxiv.org/abs/2008.00299), and ``eigen_smooth``, which puts it in place of a CAM's channel sum."""

from __future__ import annotations

import torch
from torch import Tensor


def first_component(maps: Tensor) -> Tensor:
    """``[B,C,h,w] -> [B,1,h,w]``: each position's channel vector, centred over positions, projected on the
    first right singular vector of that ``h·w × C`` matrix — as pytorch-grad-cam's ``get_2d_projection``.

    A singular vector's sign is arbitrary (pytorch-grad-cam leaves it to LAPACK, so its map can come
    out inverted); here it is chosen so that the projection does not anticorrelate with the channel
    sum ``maps.sum(1)``, the map that is being smoothed. Computed in float64; all-zero maps give zeros.
    """
    batch, channels, height, width = maps.shape
    rows = maps.double().nan_to_num().flatten(2).transpose(1, 2)  # [B, h·w, C]
    rows = rows - rows.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(rows, full_matrices=False)
    projection = rows @ vh[:, 0, :, None]  # [B, h·w, 1]
    projection = projection * agreeing_sign(projection[..., 0], maps).view(-1, 1, 1)
    return projection.transpose(1, 2).reshape(batch, 1, height, width).to(maps.dtype)


def agreeing_sign(projection: Tensor, maps: Tensor) -> Tensor:
    """``[B]`` of ±1: the sign that keeps each projection ``[B, h·w]`` from anticorrelating with ``maps.sum(1)``."""
    summed = maps.double().nan_to_num().sum(1).flatten(1)
    return torch.where((projection * (summed - summed.mean(1, keepdim=True))).sum(1) < 0, -1.0, 1.0).to(projection)
