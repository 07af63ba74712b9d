"""Two-dimensional maps of a layer's feature space: PCA, t-SNE (openTSNE) or UMAP (umap-learn).

van der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 2008
(https://jmlr.org/papers/v9/vandermaaten08a.html), computed with openTSNE (Poličar, Stražar &
Zupan, https://doi.org/10.1101/731877); McInnes et al., "UMAP", 2018
(https://arxiv.org/abs/1802.03426). Shown as a scatter coloured by label and as Karpathy's
t-SNE grid (https://cs.stanford.edu/people/karpathy/cnnembed/): points snapped to a regular
grid by an optimal assignment, each cell showing its picture.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr
from convscope.validation import count as count_check
from convscope.validation import optional_count, positive_number

if TYPE_CHECKING:
    from convscope.data.pictures import PictureSet
    from convscope.models.preprocessing import Preprocess
    from convscope.scan.result import ScanResult

METHODS = ("tsne", "pca", "umap")
NAMES = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}


@dataclass
class Embedding:
    """``points`` ``[n,2]`` for the scanned pictures ``indices`` ``[n]`` with their ``labels``."""

    __repr__ = short_repr

    layer: str
    method: str
    points: Tensor
    indices: Tensor
    labels: Tensor
    class_names: list[str] | None
    pictures: PictureSet | None = None
    preprocess: Preprocess | None = None
    note: str = ""

    def scatter(self, *, size: float = 6.0) -> Picture:
        """The map as a scatter, coloured by label (with a legend of class names)."""
        figure, axes = new_figure(size=(size * 1.25, size))
        axis = axes[0, 0]
        points = self.points.numpy()
        labelled = bool((self.labels >= 0).any())
        if labelled:
            classes = sorted({int(c) for c in self.labels.tolist() if c >= 0})
            cmap = _colours(len(classes))
            for n, label in enumerate(classes):
                chosen = (self.labels == label).numpy()
                name = self.class_names[label] if self.class_names and label < len(self.class_names) else str(label)
                axis.scatter(points[chosen, 0], points[chosen, 1], s=4, color=cmap(n), label=name, linewidths=0)
            axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, frameon=False, fontsize=8)
        else:
            axis.scatter(points[:, 0], points[:, 1], s=4, color="#4c72b0", linewidths=0)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(f"{NAMES[self.method]} of {self.layer} features ({len(self.points)} pictures)", fontsize=10)
        return figure_to_picture(figure)

    def grid_picture(self, side: int = 20, *, tile_size: int = 32, seed: int = 0) -> Picture:
        """Karpathy's grid: ``side``² points (a seeded sample) snapped to a ``side``×``side`` grid, as pictures."""
        from convscope.scan.tsne_grid import snap_to_grid

        if self.pictures is None or self.preprocess is None:
            raise ValueError("this embedding has no pictures to show; make it with ScanResult.embed")
        side = count_check(side, "side", hint="the grid is side×side pictures")
        count = side * side
        if len(self.points) < count:
            side = max(1, math.isqrt(len(self.points)))
            count = side * side
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(self.points), generator=generator)[:count].sort().values
        cells = snap_to_grid(self.points[chosen], side, side)
        tiles = torch.stack([self.preprocess.fit(self.pictures.picture(int(self.indices[i])))[0] for i in chosen])
        ordered = torch.empty_like(tiles)
        ordered[cells] = tiles
        body = grid(ordered, columns=side, tile_size=tile_size, padding=0)
        return titled(body, f"{NAMES[self.method]} grid of {self.layer} features",
                      f"{count} pictures placed on a {side}×{side} grid by an optimal assignment to their "
                      "map positions")

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["picture", "label", "x", "y"])
            for index, label, (x, y) in zip(self.indices.tolist(), self.labels.tolist(), self.points.tolist(),
                                            strict=True):
                writer.writerow([index, label, f"{x:.6g}", f"{y:.6g}"])
        return path

    def _repr_png_(self) -> bytes:
        return self.scatter()._repr_png_()


def embed(result: ScanResult, layer: str | None = None, *, method: str = "tsne", max_points: int | None = 5000,
          seed: int = 0, **options: Any) -> Embedding:
    """Map ``layer``'s features of (up to ``max_points``, a seeded sample of) the scanned pictures to 2-d."""
    layer = result.check_layer(layer)
    max_points = optional_count(max_points, "max_points", hint="None or 0 embed every picture")
    features = result.features(layer)
    indices = torch.arange(result.count)
    if max_points is not None and result.count > max_points:
        generator = torch.Generator().manual_seed(seed)
        indices = torch.randperm(result.count, generator=generator)[:max_points].sort().values
    points, note = embed_features(features[indices].float(), method=method, seed=seed, **options)
    return Embedding(layer, method, points, indices, result.labels[indices], result.class_names,
                     result.pictures if _can_show(result) else None, result.preprocess, note)


def embed_features(features: Tensor, *, method: str = "tsne", seed: int = 0, **options: Any) -> tuple[Tensor, str]:
    """``features`` ``[n,D]`` → points ``[n,2]`` (float32, CPU) and a note (e.g. explained variance)."""
    if method not in METHODS:
        raise ValueError(f"unknown embedding {method!r}: use one of {', '.join(METHODS)}")
    if features.dim() != 2 or features.shape[0] < 3:
        raise ValueError(f"an embedding needs features [n,D] with n ≥ 3, got {tuple(features.shape)}")
    if method == "pca":
        return pca(features)
    if method == "tsne":
        perplexity, note = tsne_perplexity(options.pop("perplexity", 30.0), features.shape[0])
        return tsne(features, seed=seed, perplexity=perplexity, **options), note
    return umap(features, seed=seed, **options), ""


def pca(features: Tensor, components: int = 2) -> tuple[Tensor, str]:
    """Projection on the first principal components (exact SVD on the features' device)."""
    centred = features.double() - features.double().mean(0)
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)
    points = centred @ right[:components].T
    explained = (singular[:components] ** 2).sum() / (singular ** 2).sum().clamp_min(1e-30)
    return points.float().cpu(), f"the first {components} components explain {float(explained):.0%} of the variance"


def tsne(features: Tensor, *, seed: int = 0, perplexity: float = 30.0, jobs: int | None = None,
         **options: Any) -> Tensor:
    """openTSNE's t-SNE (PCA initialisation, FFT-accelerated gradients); perplexity shrinks for tiny sets."""
    from openTSNE import TSNE

    perplexity, _ = tsne_perplexity(perplexity, features.shape[0])
    model = TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=jobs or _cores(),
                 verbose=False, **options)
    return torch.as_tensor(np.asarray(model.fit(_array(features))), dtype=torch.float32)


def tsne_perplexity(perplexity: float, count: int) -> tuple[float, str]:
    """The perplexity t-SNE can use for ``count`` points, and a note when it was lowered.

    Each point's neighbourhood spans about 3 × perplexity others: a perplexity of ``count`` or more is
    refused (it would ask for more neighbours than there are points); one above (count − 1)/3 is lowered.
    """
    perplexity = positive_number(perplexity, "perplexity")
    most = max(1.0, (count - 1) / 3)
    if perplexity >= count:
        raise ValueError(f"t-SNE perplexity {perplexity:g} is not less than the {count} points embedded (each point's "
                         f"neighbourhood spans about 3 × perplexity others): use at most {most:.3g} (typically 5–50)")
    if perplexity > most:
        return most, f"t-SNE perplexity {perplexity:g} lowered to {most:.3g}, (n − 1)/3 for {count} points"
    return perplexity, ""


def umap(features: Tensor, *, seed: int = 0, **options: Any) -> Tensor:
    """UMAP from umap-learn (an optional extra)."""
    try:
        import umap as umap_learn
    except ImportError as error:
        raise ValueError("UMAP needs the optional package umap-learn: pip install 'convscope[umap]' "
                         "(or use --method tsne / pca)") from error
    reducer = umap_learn.UMAP(n_components=2, random_state=seed, **options)
    return torch.as_tensor(reducer.fit_transform(_array(features)), dtype=torch.float32)


def _array(features: Tensor):
    return features.detach().double().cpu().numpy()


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _colours(count: int):
    import matplotlib

    return matplotlib.colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "turbo"].resampled(count)


def _can_show(result: ScanResult) -> bool:
    try:
        return len(result.pictures) == result.count
    except ValueError:
        return False
