"""Noisy linear imputation (Rong et al. 2022, https://arxiv.org/abs/2202.00449), the perturbation ROAD removes
pixels with: each removed pixel becomes the weighted mean of its 8 neighbours inside the picture (1/6 for the four
beside it, 1/12 for the four diagonal ones; removed neighbours are unknowns too), plus Gaussian noise.

The means form one sparse symmetric positive definite system per picture and mask (a masked graph Laplacian),
solved for every channel at once in float64 by one of two solvers that agree to 1e-9:

- ``direct`` (the default for pictures on the CPU): the system built in one vectorised pass and factorised once
  by SciPy's sparse LU — fast where the removed regions are large (a smooth map's top 95 % of a 224 px picture);
- ``cg`` (the default on an accelerator): all pictures' systems at once in torch on their device, conjugate
  gradients whose matrix is a 3×3 convolution, preconditioned by the diagonal, to a relative residual of 1e-10 —
  cheap per step, but the steps grow with the size of the holes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.analysis.metrics.common import generator_for

_CORNER, _EDGE = 1 / 12, 1 / 6


def _weights(dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.tensor([[_CORNER, _EDGE, _CORNER], [_EDGE, 0.0, _EDGE], [_CORNER, _EDGE, _CORNER]],
                        dtype=dtype, device=device).view(1, 1, 3, 3)


def linear_imputation(x: Tensor, removed: Tensor, *, solver: str = "auto", tolerance: float = 1e-10,
                      max_iterations: int | None = None) -> Tensor:
    """Pictures ``x`` ``[N,C,H,W]`` with the pixels where ``removed`` ``[N,1,H,W]`` (or ``[N,H,W]``) is True replaced
    by the weighted mean of their neighbours (every channel on its own, no noise), float64. ``solver``: ``direct``,
    ``cg`` or ``auto`` (direct on the CPU); ``tolerance`` and ``max_iterations`` are conjugate gradients'. A
    picture with every pixel removed has no known value to start from: refused."""
    if x.dim() != 4:
        raise ValueError(f"pictures must be [N,C,H,W], got {tuple(x.shape)}")
    removed = (removed[:, None] if removed.dim() == 3 else removed).to(x.device).bool()
    if removed.shape != (x.shape[0], 1, *x.shape[-2:]):
        raise ValueError(f"one mask [N,1,H,W] per picture is needed: pictures {tuple(x.shape)}, masks "
                         f"{tuple(removed.shape)}")
    if bool(removed.flatten(1).all(1).any()):
        raise ValueError("a picture has every pixel removed: nothing is left to impute from (remove fewer)")
    if solver not in ("auto", "direct", "cg"):
        raise ValueError(f"solver must be 'auto', 'direct' or 'cg', got {solver!r}")
    if solver == "direct" or (solver == "auto" and x.device.type == "cpu"):
        return torch.stack([_direct(picture, gone[0]) for picture, gone in zip(x, removed, strict=True)])
    n, c, h, w = x.shape
    values = x.detach().double().reshape(n * c, 1, h, w)
    m = removed.repeat_interleave(c, 0).double()
    kernel = _weights(values.dtype, values.device)

    def neighbours(v: Tensor) -> Tensor:
        return F.conv2d(v, kernel, padding=1)

    diagonal = neighbours(torch.ones(1, 1, h, w, dtype=values.dtype, device=values.device))  # weight in the picture
    b = m * neighbours(values * (1 - m))

    def apply(v: Tensor) -> Tensor:  # the system's matrix on values that are zero off the mask
        return m * (diagonal * v - neighbours(v))

    u, r = torch.zeros_like(b), b.clone()
    z = r / diagonal
    p = z.clone()
    rz = (r * z).flatten(1).sum(1)
    goal = tolerance * b.flatten(1).norm(dim=1)
    limit = max_iterations if max_iterations is not None else 4 * h * w
    for _ in range(limit):
        if bool((r.flatten(1).norm(dim=1) <= goal).all()):
            break
        q = apply(p)
        pq = (p * q).flatten(1).sum(1)
        alpha = torch.where(pq > 0, rz / pq.clamp_min(torch.finfo(pq.dtype).tiny), torch.zeros_like(pq))
        u = u + alpha.view(-1, 1, 1, 1) * p
        r = r - alpha.view(-1, 1, 1, 1) * q
        z = r / diagonal
        rz_next = (r * z).flatten(1).sum(1)
        beta = torch.where(rz > 0, rz_next / rz.clamp_min(torch.finfo(rz.dtype).tiny), torch.zeros_like(rz))
        p = z + beta.view(-1, 1, 1, 1) * p
        rz = rz_next
    return torch.where(m.bool(), u, values).view(n, c, h, w)


_OFFSETS = ((-1, -1, _CORNER), (-1, 0, _EDGE), (-1, 1, _CORNER), (0, -1, _EDGE), (0, 1, _EDGE),
            (1, -1, _CORNER), (1, 0, _EDGE), (1, 1, _CORNER))


def _direct(picture: Tensor, removed: Tensor) -> Tensor:
    """One picture ``[C,H,W]`` imputed where ``removed`` ``[H,W]``: its system factorised once by SciPy's sparse LU
    and solved for every channel."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    c, h, w = picture.shape
    values = picture.detach().double().reshape(c, -1).cpu().numpy()
    gone = removed.reshape(-1).cpu().numpy()
    unknown = np.flatnonzero(gone)
    if unknown.size == 0:
        return torch.as_tensor(values).view(c, h, w).to(picture.device)
    number = np.full(h * w, -1)
    number[unknown] = np.arange(unknown.size)
    rows, cols = unknown // w, unknown % w
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, c))
    at, to, weights = [], [], []
    for dy, dx, weight in _OFFSETS:
        r, q = rows + dy, cols + dx
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        here, there = np.flatnonzero(inside), r[inside] * w + q[inside]
        diagonal[here] += weight
        also = gone[there]
        at.append(here[also])
        to.append(number[there[also]])
        weights.append(np.full(int(also.sum()), -weight))
        np.add.at(rhs, here[~also], weight * values[:, there[~also]].T)
    index = np.arange(unknown.size)
    matrix = coo_matrix((np.concatenate([diagonal, *weights]), (np.concatenate([index, *at]),
                                                                 np.concatenate([index, *to]))),
                        shape=(unknown.size, unknown.size)).tocsc()
    solved = splu(matrix).solve(rhs)
    values[:, unknown] = solved.T
    return torch.as_tensor(values).view(c, h, w).to(picture.device)


def noisy_linear_imputation(x: Tensor, removed: Tensor, *, noise: float = 0.01,
                            seed: int | torch.Generator | None = 0) -> Tensor:
    """:func:`linear_imputation` plus Gaussian noise of standard deviation ``noise`` on the removed pixels (every
    channel), drawn with ``seed``; in ``x``'s dtype."""
    filled = linear_imputation(x, removed)
    if noise:
        generator = generator_for(seed, filled.device)
        draw = torch.randn(filled.shape, generator=generator, dtype=filled.dtype, device=generator.device)
        draw = draw.to(filled.device)
        mask = (removed[:, None] if removed.dim() == 3 else removed).to(filled.device).bool()
        filled = torch.where(mask, filled + noise * draw, filled)
    return filled.to(x.dtype)
