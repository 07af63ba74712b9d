"""Multifaceted feature visualisation (Nguyen, Yosinski & Clune, 2016, https://arxiv.org/abs/1602.03616).

A unit often responds to several different things (a "tie" unit to ties on people and
ties on shelves). To show each facet: rank a pool of images by the unit, take its top
images, reduce their activations with PCA and cluster them with k-means; then start the
optimisation of the unit from each cluster's mean image, one picture per facet.

The pool here is any set of pictures — by default crops of the bundled photos
(:func:`crop_pool`) — ranked with a simple batched pass (:func:`rank_pool`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model, as_model
from convscope.progress import progress_bar
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.loop import optimise
from convscope.synthesis.objectives import channel
from convscope.synthesis.params import from_image
from convscope.synthesis.regularisers import Blur
from convscope.synthesis.seeded import draw_index
from convscope.synthesis.sizes import fixed_input_size
from convscope.synthesis.transforms import Jitter, Pad


@dataclass
class FacetResult:
    """One picture per facet of ``layer``:``channel``.

    ``images``/``starts`` ``[K,3,H,W]``: the optimised facets and the cluster means they
    started from; ``top_images`` ``[T,3,H,W]`` the pool's most activating pictures with
    ``top_scores`` and their facet in ``assignments``; ``start_scores``/``final_scores``
    the unit's activation on the starts and on the facets.
    """

    __repr__ = short_repr

    layer: str
    channel: int
    images: Tensor
    starts: Tensor
    top_images: Tensor
    top_scores: Tensor
    assignments: Tensor
    start_scores: Tensor
    final_scores: Tensor

    def picture(self, tile_size: int = 112, members: int = 4) -> Picture:
        """One row per facet: the facet, its starting picture and some of its cluster's top pictures."""
        rows = []
        for k in range(len(self.images)):
            chosen = (self.assignments == k).nonzero().flatten()[:members]
            tiles = [self.images[k], self.starts[k]] + [self.top_images[i] for i in chosen.tolist()]
            labels = [f"facet {k + 1}: {float(self.final_scores[k]):.2f}",
                      f"mean of {int((self.assignments == k).sum())}: {float(self.start_scores[k]):.2f}"]
            labels += [f"top: {float(self.top_scores[i]):.2f}" for i in chosen.tolist()]
            rows.append(grid(torch.stack(tiles), labels=labels, tile_size=tile_size, columns=len(tiles)))
        return titled(stack(rows, direction="vertical", gap=4), f"Facets of {self.layer} channel {self.channel}",
                      "per row: the facet, the cluster mean it started from, members of the cluster "
                      "(numbers: the channel's mean activation)")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def crop_pool(pictures: Sequence[Tensor], size: int = 112, *, scales: Sequence[float] = (1.0, 0.6, 0.35),
              flips: bool = True) -> Tensor:
    """Square crops of ``pictures`` at several ``scales`` of the short side, on a half-overlapping grid,
    resized to ``size`` (and mirrored when ``flips``): ``[N,3,size,size]``."""
    crops = []
    for picture in pictures:
        picture = picture.float().expand(3, -1, -1)
        height, width = picture.shape[-2:]
        for scale in scales:
            side = max(8, int(min(height, width) * scale))
            stride = max(1, side // 2)
            for top in range(0, height - side + 1, stride):
                for left in range(0, width - side + 1, stride):
                    crop = picture[:, top:top + side, left:left + side][None]
                    crops.append(F.interpolate(crop, size=(size, size), mode="area" if side > size else "bilinear",
                                               align_corners=None if side > size else False)[0])
    if not crops:
        raise ValueError("no crops: give at least one picture")
    pool = torch.stack(crops).clamp(0, 1)
    return torch.cat([pool, pool.flip(-1)]) if flips else pool


def rank_pool(model: Model | nn.Module, layer: str, channel_index: int, pool: Tensor, *, batch_size: int = 32,
              progress: bool = True) -> tuple[Tensor, Tensor]:
    """The unit's mean activation per pool picture ``[N]`` and the layer's channel means ``[N,C]``."""
    model = as_model(model)
    model.layer(layer)
    scores, features = [], []
    with inspection_mode(model.net), capture(model.net, [layer], detach=True) as store, torch.no_grad():
        for start in progress_bar(range(0, len(pool), batch_size), desc="rank pool", enabled=progress, leave=False):
            batch = model.preprocess.normalize(pool[start:start + batch_size].to(model.device))
            model.net(batch)
            acts = store.activation(layer)
            if acts.dim() == 2:
                acts = acts[:, :, None, None]
            if not 0 <= channel_index < acts.shape[1]:
                raise ValueError(f"channel {channel_index} is out of range: layer {layer!r} has {acts.shape[1]} "
                                 "channels")
            means = acts.flatten(2).mean(2)
            scores.append(means[:, channel_index].cpu())
            features.append(means.cpu())
    return torch.cat(scores), torch.cat(features)


def kmeans(points: Tensor, k: int, *, generator: torch.Generator, restarts: int = 10,
           iterations: int = 50) -> Tensor:
    """Cluster labels ``[N]`` of ``points`` ``[N,D]`` by k-means (k-means++ starts, best of ``restarts``)."""
    if not 1 <= k <= len(points):
        raise ValueError(f"cannot make {k} clusters of {len(points)} points")
    best_labels, best_inertia = None, float("inf")
    for _ in range(restarts):
        centres = points[draw_index(len(points), generator)][None]
        while len(centres) < k:
            nearest = torch.cdist(points, centres).min(1).values.pow(2)
            weights = nearest / nearest.sum() if nearest.sum() > 0 else torch.ones_like(nearest) / len(nearest)
            pick = torch.multinomial(weights, 1, generator=generator)
            centres = torch.cat([centres, points[pick]])
        for _ in range(iterations):
            labels = torch.cdist(points, centres).argmin(1)
            moved = torch.stack([points[labels == j].mean(0) if (labels == j).any() else centres[j]
                                 for j in range(k)])
            if torch.allclose(moved, centres):
                break
            centres = moved
        labels = torch.cdist(points, centres).argmin(1)
        inertia = float((points - centres[labels]).pow(2).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    if best_labels is None:  # no restart, or distances that are not numbers
        raise ValueError(f"k-means found no clustering: give restarts ≥ 1 (got {restarts}) and finite points")
    return best_labels


def multifaceted(model: Model | nn.Module, layer: str, channel_index: int, pool: Tensor, *, facets: int = 4,
                 top: int | None = None, components: int = 16, steps: int = 200, lr: float = 0.02,
                 blur: float = 0.5, generator: torch.Generator | None = None, batch_size: int = 32,
                 progress: bool = True) -> FacetResult:
    """One visualisation per facet of ``layer``:``channel_index`` from the pictures in ``pool`` ``[N,3,H,W]``.

    ``top`` (default 5 per facet, at least 15) pool pictures with the highest mean activation
    are projected onto their first ``components`` principal components of the layer's
    channel means and split into ``facets`` clusters; each cluster's mean picture starts
    an optimisation of the channel (jitter, a Gaussian blur of ``blur`` pixels every 4
    steps), all facets in one batch.
    """
    model = as_model(model)
    fixed = fixed_input_size(model, layer)
    if model.preprocess.channels != 3 or fixed is not None:
        what = f"{fixed[0]}×{fixed[1]} " if fixed else ""
        raise ValueError(f"facets rank a pool of colour crops of any size; {model.name} reads only {what}"
                         f"{'grey ' if model.preprocess.channels == 1 else ''}pictures: use featviz for its channels")
    if pool.dim() != 4 or pool.shape[1] != 3:
        raise ValueError(f"the pool is a batch of pictures [N,3,H,W] in [0, 1], got {tuple(pool.shape)}; "
                         "build one with crop_pool(pictures)")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    top = top if top is not None else max(15, 5 * facets)
    top = min(top, len(pool))
    if facets > top:
        raise ValueError(f"{facets} facets need at least as many pool pictures; the pool has {len(pool)}")
    scores, features = rank_pool(model, layer, channel_index, pool, batch_size=batch_size, progress=progress)
    order = scores.argsort(descending=True)[:top]
    chosen = features[order]
    centred = chosen - chosen.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vh[:min(components, vh.shape[0])].T
    labels = kmeans(reduced, facets, generator=generator)
    top_images = pool[order]
    starts = torch.stack([top_images[labels == k].mean(0) for k in range(facets)])
    shift = max(1, pool.shape[-1] // 32)
    result = optimise(model, channel(layer, channel_index), from_image(starts), steps=steps, lr=lr,
                      transforms=[Pad(shift, mode="replicate"), Jitter(2 * shift)], step_rules=[Blur(blur, 4)],
                      generator=generator, progress=progress, description="facets")
    start_scores, _ = rank_pool(model, layer, channel_index, starts, progress=False)
    final_scores, _ = rank_pool(model, layer, channel_index, result.images, progress=False)
    return FacetResult(layer, channel_index, result.images, starts, top_images, scores[order], labels,
                       start_scores, final_scores)
