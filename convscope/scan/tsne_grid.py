"""Snapping 2-d points to a regular grid, one point per cell, with the least total squared movement.

The layout of Karpathy's t-SNE grids (https://cs.stanford.edu/people/karpathy/cnnembed/): the
map is scaled to the unit square and the assignment of points to cell centres is solved
exactly (a linear assignment problem; Crouse, "On implementing 2D rectangular assignment
algorithms", 2016, as in ``scipy.optimize.linear_sum_assignment``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def snap_to_grid(points: Tensor, rows: int, columns: int) -> Tensor:
    """The cell (``row · columns + column``) of each point ``[n,2]`` (x, y), ``n ≤ rows · columns``.

    Larger y goes to upper rows, so the grid looks like the scatter plot.
    """
    from scipy.optimize import linear_sum_assignment

    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points are [n,2], got {tuple(points.shape)}")
    if rows < 1 or columns < 1 or len(points) > rows * columns:
        raise ValueError(f"{len(points)} points do not fit a {rows}×{columns} grid")
    points = points.double()
    low, high = points.amin(0), points.amax(0)
    unit = (points - low) / (high - low).clamp_min(1e-12)
    row, column = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(columns, dtype=torch.float64),
                                 indexing="ij")
    centres = torch.stack([(column.flatten() + 0.5) / columns, 1 - (row.flatten() + 0.5) / rows], dim=1)
    cost = torch.cdist(unit, centres).square()
    chosen_points, cells = linear_sum_assignment(cost.numpy())
    result = torch.empty(len(points), dtype=torch.long)
    result[torch.as_tensor(chosen_points)] = torch.as_tensor(cells, dtype=torch.long)
    return result
