"""Units against random directions: are single channels special?

Szegedy et al., "Intriguing properties of neural networks" (2014, https://arxiv.org/abs/1312.6199),
section 3: the pictures that maximise a single unit, x' = arg max ⟨φ(x), e_i⟩, look as semantically
coherent as those that maximise a random direction, arg max ⟨φ(x), v⟩ — so the space, not the unit
basis, carries the meaning. Both are read here from a scan's stored per-picture features (no second
pass over the data): the top ``k`` pictures of every unit and of as many random unit-length
directions (or the layer's principal components), and two coherence scores for each set of ``k``:
label purity (the share of the most common label) and the mean pairwise cosine similarity of their
features. The two distributions, side by side, answer the question on *this* model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from convscope.render.layout import grid, stack, text_picture, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr

if TYPE_CHECKING:
    from convscope.scan.result import ScanResult

KINDS = ("random", "pca")


@dataclass
class DirectionStudy:
    """Top pictures and coherence of every unit of ``layer`` and of as many other directions.

    ``units`` are the units compared: all but the ``constant_units`` whose value never varies over the
    scan (dead ReLUs: their "top" pictures would be arbitrary ties). ``unit_top`` ``[U,k]`` and
    ``direction_top`` ``[R,k]`` are picture indices, best first; ``*_purity`` and ``*_similarity`` one
    score per unit or direction; ``directions`` ``[R,D]`` the unit-length directions themselves;
    ``shown_units`` the rows of ``unit_top`` drawn (chosen at random with the seed, not picked).
    """

    __repr__ = short_repr

    layer: str
    kind: str
    k: int
    directions: Tensor
    units: Tensor
    unit_top: Tensor
    direction_top: Tensor
    unit_purity: Tensor
    direction_purity: Tensor
    unit_similarity: Tensor
    direction_similarity: Tensor
    shown_units: list[int]
    has_labels: bool
    tiles: dict[int, Tensor]
    constant_units: int = 0

    def lines(self) -> list[str]:
        """Mean ± standard deviation of each score for units and directions, and what they say."""
        rows = []
        scores = [("feature similarity", self.unit_similarity, self.direction_similarity)]
        if self.has_labels:
            scores.insert(0, ("label purity", self.unit_purity, self.direction_purity))
        for name, units, directions in scores:
            rows.append(f"{name} of the top {self.k}: {len(units)} units {_spread(units)}, {len(directions)} "
                        f"{self.kind} directions {_spread(directions)}")
        if self.constant_units:
            rows.append(f"{self.constant_units} units constant over the scan (dead) left out")
        return rows

    def verdict(self) -> str:
        """One sentence: are units more coherent than the other directions on this layer?"""
        units, others = (self.unit_purity, self.direction_purity) if self.has_labels else \
            (self.unit_similarity, self.direction_similarity)
        gap = float(units.mean() - others.mean())
        noise = float((units.var() / len(units) + others.var() / len(others)).sqrt())
        if abs(gap) <= 2 * noise:
            return (f"at {self.layer}, single units are no more coherent than {self.kind} directions "
                    f"(difference {gap:+.3f} within twice its standard error {noise:.3f}): as Szegedy et al. "
                    "found, the space, not the unit basis, carries the meaning")
        better = "more" if gap > 0 else "less"
        return (f"at {self.layer}, single units are {better} coherent than {self.kind} directions (difference "
                f"{gap:+.3f}, standard error {noise:.3f}): the unit basis is {'' if gap > 0 else 'not '}special here")

    def picture(self, tile_size: int = 48) -> Picture:
        """The shown units' top pictures beside as many directions' top pictures, with the scores."""
        columns = []
        for title, rows, tops, purity in (
                ("single units", self.shown_units, self.unit_top, self.unit_purity),
                (f"{self.kind} directions", list(range(len(self.shown_units))), self.direction_top,
                 self.direction_purity)):
            panels = []
            for row in rows:
                tiles = torch.stack([self.tiles[int(i)] for i in tops[row]])
                label = f"unit {int(self.units[row])}" if title == "single units" else f"direction {row}"
                if self.has_labels:
                    label += f"  purity {float(purity[row]):.2f}"
                panels.append(titled(grid(tiles, columns=self.k, tile_size=tile_size, padding=2), label, size=11))
            columns.append(titled(stack(panels, direction="vertical", gap=4), title, size=14))
        summary = text_picture([*self.lines(), self.verdict()], size=12)
        body = stack([stack(columns, gap=24), summary], direction="vertical", gap=10)
        return titled(body, f"Units vs {self.kind} directions at {self.layer}",
                      f"top {self.k} scanned pictures of each by its pooled feature (Szegedy et al. 2014, §3)")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def direction_study(result: ScanResult, layer: str | None = None, *, kind: str = "random", count: int = 8,
                    k: int = 9, seed: int = 0) -> DirectionStudy:
    """Units against ``kind`` directions of ``layer``'s stored features: ``random`` (Gaussian, unit length, as
    many as units) or ``pca`` (the leading principal components, as many as live units); ``count`` of each
    are drawn."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of direction {kind!r}: use one of {', '.join(KINDS)}")
    layer = result.check_layer(layer)
    features = result.features(layer).float()
    count_pictures, width = features.shape
    if not 2 <= k <= count_pictures:
        raise ValueError(f"k must be between 2 and the {count_pictures} scanned pictures, got {k}")
    if not 1 <= count <= width:
        raise ValueError(f"count must be between 1 and the layer's {width} units, got {count}")
    generator = torch.Generator().manual_seed(seed)
    if kind == "random":
        directions = torch.randn(width, width, generator=generator)
    else:
        centred = features - features.mean(0)
        directions = torch.linalg.svd(centred, full_matrices=False).Vh
        directions = directions * torch.where(directions.sum(1, keepdim=True) < 0, -1.0, 1.0)  # mostly positive
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best = features.topk(k, dim=0)
    informative = best.values[-1] > features.amin(0)  # a unit whose top k tie with its lowest (dead) has no top k
    if not informative.any():
        raise ValueError(f"every unit of {layer} is constant over the scan (dead): no top pictures to compare")
    unit_top = best.indices.T[informative]
    units = informative.nonzero().flatten()
    count = min(count, len(units))
    if kind == "pca":
        directions = directions[:len(units)]  # the leading components, as many as live units
    direction_top = (features @ directions.T).topk(k, dim=0).indices.T
    labels = result.labels
    has_labels = bool((labels >= 0).all())
    shown = sorted(torch.randperm(len(units), generator=generator)[:count].tolist())  # rows of unit_top
    needed = {int(i) for i in unit_top[shown].flatten()} | {int(i) for i in direction_top[:count].flatten()}
    fitted = {i: result.preprocess.fit(result.pictures.picture(i))[0] for i in sorted(needed)}
    tiles = {i: t.expand(3, -1, -1) if t.shape[0] == 1 else t for i, t in fitted.items()}
    return DirectionStudy(layer, kind, k, directions, units, unit_top, direction_top,
                          _purity(labels, unit_top), _purity(labels, direction_top),
                          _similarity(features, unit_top), _similarity(features, direction_top),
                          shown, has_labels, tiles, width - len(units))


def _purity(labels: Tensor, top: Tensor) -> Tensor:
    """Share of each row's pictures that carry the row's most common label ``[R]``."""
    picked = labels[top]
    counts = torch.zeros(top.shape[0], int(labels.max()) + 2, dtype=torch.long)
    counts.scatter_add_(1, picked.clamp_min(0), torch.ones_like(picked))
    return counts.amax(1).float() / top.shape[1]


def _similarity(features: Tensor, top: Tensor) -> Tensor:
    """Mean pairwise cosine similarity of each row's pictures' features ``[R]`` (the diagonal left out)."""
    unit = torch.nn.functional.normalize(features[top], dim=-1)
    gram = unit @ unit.transpose(1, 2)
    k = top.shape[1]
    return (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)) / (k * (k - 1))


def _spread(values: Tensor) -> str:
    return f"{float(values.mean()):.3f} ± {float(values.std()):.3f}"
