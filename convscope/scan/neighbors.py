"""Nearest neighbours in feature space next to nearest neighbours in pixel space.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012, figure 4: pictures whose last hidden layer (fc7) vectors are close
show the same kind of object, although their pixels are far apart; neighbours by pixels mostly
share colours and layout. Search is exact, batched on the device over chunks of the stored
features (and a streaming pass over the pictures for pixel space).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from convscope.data.pictures import FittedPictures
from convscope.hooks import capture, inspection_mode
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.scan.recorder import LayerRecorder

if TYPE_CHECKING:
    from convscope.models.model import Model
    from convscope.scan.result import ScanResult

METRICS = ("euclidean", "cosine")
CHUNK = 65_536


def nearest(queries: Tensor, database: Tensor, k: int, *, metric: str = "euclidean",
            exclude: Tensor | None = None, device: torch.device | str | None = None,
            chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """Exact k nearest rows of ``database`` ``[N,D]`` to each query ``[Q,D]``: indices and distances ``[Q,k]``.

    ``exclude`` ``[Q]`` (database index or -1) removes a query's own row. Equal distances are
    ordered by index. ``cosine`` distance is ``1 - cos``. The database may live on the CPU
    (even memory-mapped); it is moved to ``device`` chunk by chunk.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    if queries.dim() != 2 or database.dim() != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(f"queries [Q,D] and database [N,D] must agree in D, got {tuple(queries.shape)} and "
                         f"{tuple(database.shape)}")
    device = torch.device(device) if device is not None else queries.device
    search = RunningNearest(_prepared(queries.to(device), metric), k, exclude, database.shape[0])
    for start in range(0, database.shape[0], chunk):
        rows = _prepared(database[start:start + chunk].to(device), metric)
        search.add(_distances(search.queries, rows, metric), torch.arange(start, start + rows.shape[0]))
    return search.indices, search.distances


class RunningNearest:
    """The k smallest distances seen so far per query, over candidates added chunk by chunk."""

    def __init__(self, queries: Tensor, k: int, exclude: Tensor | None, candidates: int) -> None:
        excluded = int(bool(exclude is not None and (exclude >= 0).any()))
        if not 1 <= k <= candidates - excluded:
            raise ValueError(f"k must be between 1 and {candidates - excluded} (the number of candidates), got {k}")
        self.queries, self.k = queries, k
        device = queries.device
        self.exclude = (exclude if exclude is not None else torch.full((len(queries),), -1)).to(device).view(-1, 1)
        self.distances = torch.full((len(queries), 0), torch.inf, device=device)
        self.indices = torch.zeros((len(queries), 0), dtype=torch.long, device=device)

    def add(self, distances: Tensor, indices: Tensor) -> None:
        """Merge candidates: ``distances`` ``[Q,n]`` to the pictures ``indices`` ``[n]``."""
        indices = indices.to(distances.device).view(1, -1)
        distances = distances.masked_fill(self.exclude == indices, torch.inf)
        every_d = torch.cat([self.distances, distances], dim=1)
        every_i = torch.cat([self.indices, indices.expand(len(distances), -1)], dim=1)
        order = every_d.argsort(dim=1, stable=True)[:, : self.k]
        self.distances, self.indices = every_d.gather(1, order), every_i.gather(1, order)


def _distances(queries: Tensor, rows: Tensor, metric: str) -> Tensor:
    if metric == "euclidean":
        return torch.cdist(queries, rows, compute_mode="donot_use_mm_for_euclid_dist")
    return 1 - queries @ rows.T


def _prepared(rows: Tensor, metric: str) -> Tensor:
    rows = rows.float()
    return torch.nn.functional.normalize(rows, dim=1) if metric == "cosine" else rows


@dataclass
class Neighbors:
    """For each query: the ``k`` nearest scanned pictures by features and by pixels."""

    __repr__ = short_repr

    layer: str
    metric: str
    names: list[str]
    queries: Tensor
    query_labels: Tensor
    feature_indices: Tensor
    feature_distances: Tensor
    pixel_indices: Tensor
    pixel_distances: Tensor
    feature_pictures: Tensor
    pixel_pictures: Tensor
    labels: Tensor
    class_names: list[str] | None

    def agreement(self) -> tuple[float, float]:
        """Share of neighbours with the query's label, in feature and in pixel space (NaN when unlabelled)."""
        known = self.query_labels >= 0
        if not bool(known.any()):
            return float("nan"), float("nan")
        wanted = self.query_labels[known].view(-1, 1)
        feature, pixel = (float((self.labels[idx[known]] == wanted).float().mean())
                          for idx in (self.feature_indices, self.pixel_indices))
        return feature, pixel

    def picture(self, tile_size: int = 64) -> Picture:
        """The query (▸) in the first column, its neighbours to the right; features left, pixels right.

        Neighbours whose label differs from the query's are framed red.
        """
        halves = []
        for title, indices, pictures in (("feature space", self.feature_indices, self.feature_pictures),
                                         ("pixel space", self.pixel_indices, self.pixel_pictures)):
            k = indices.shape[1]
            tiles = torch.cat([self.queries[:, None], pictures], dim=1).flatten(0, 1)
            labels, flagged = [], []
            for q in range(len(self.queries)):
                own = int(self.query_labels[q])
                labels.append(f"▸ {self._class(own)}" if own >= 0 else "▸ query")
                flagged.append(False)
                for i in indices[q].tolist():
                    label = int(self.labels[i])
                    labels.append(self._class(label) if label >= 0 else f"#{i}")
                    flagged.append(bool(self.query_labels[q] >= 0 and label != int(self.query_labels[q])))
            body = grid(tiles, columns=k + 1, labels=labels, tile_size=tile_size, flagged=flagged)
            halves.append(titled(body, f"Nearest in {title}", _space_note(title, self.layer, self.metric)))
        feature_share, pixel_share = self.agreement()
        subtitle = "first column (▸): the query" + ("" if feature_share != feature_share else
                                                     f"; neighbours of the query's class: {feature_share:.0%} by "
                                                     f"features, {pixel_share:.0%} by pixels (others framed red)")
        return titled(stack(halves, gap=24), f"Nearest neighbours at {self.layer}", subtitle)

    def _class(self, label: int) -> str:
        return self.class_names[label] if self.class_names and 0 <= label < len(self.class_names) else str(label)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def _space_note(title: str, layer: str, metric: str) -> str:
    return f"{metric} distance between {layer} features" if title == "feature space" else \
        "L2 distance between the pictures as the model sees them"


def neighbors(result: ScanResult, queries: Sequence[int | Tensor] | Tensor, layer: str | None = None, *,
              k: int = 8, metric: str = "euclidean", model: Model | None = None,
              device: torch.device | str | None = None) -> Neighbors:
    """Nearest neighbours of ``queries``: indices into the scanned set, or pictures ``[C,H,W]`` in [0, 1].

    Pictures need the model (``model``, else reloaded from the scan); a scanned picture is
    never its own neighbour.
    """
    layer = result.check_layer(layer)
    if isinstance(queries, Tensor):
        queries = list(queries) if queries.dim() == 4 else [queries]
    if not queries:
        raise ValueError("give at least one query: a picture index or a picture")
    preprocess = result.preprocess
    database = result.features(layer)
    indexed = [q for q in queries if not isinstance(q, Tensor)]
    for q in indexed:
        if not isinstance(q, int) or not 0 <= q < result.count:
            raise ValueError(f"query {q!r} is not a picture index of the scan (0 … {result.count - 1})")
    pictures = [result.pictures.picture(q) if not isinstance(q, Tensor) else q for q in queries]
    fitted = preprocess.fit(pictures)
    own = torch.tensor([q if not isinstance(q, Tensor) else -1 for q in queries])
    features = torch.zeros(len(queries), database.shape[1])
    if bool((own >= 0).any()):
        features[own >= 0] = database[own[own >= 0]].float()
    if bool((own < 0).any()):
        model = model if model is not None else result.model(device)
        outside = [p for p, o in zip(pictures, own.tolist(), strict=True) if o < 0]
        features[own < 0] = features_of(model, outside, layer, result.config["pooling"]).cpu()
    cpu = torch.device("cpu")
    device = torch.device(device) if device is not None else (model.device if model is not None else cpu)
    feature_i, feature_d = nearest(features, database, k, metric=metric, exclude=own, device=device)
    pixel_i, pixel_d = _pixel_nearest(result, fitted, k, own, device)
    names = [result.pictures.name(q) if not isinstance(q, Tensor) else f"query {n}" for n, q in enumerate(queries)]
    labels = result.labels
    query_labels = torch.tensor([int(labels[q]) if not isinstance(q, Tensor) else -1 for q in queries])
    shown = {int(i) for i in torch.cat([feature_i.flatten(), pixel_i.flatten()]).tolist()}
    result.check_pictures([*indexed, *shown])  # the pictures shown are the ones whose features were compared
    looks = {i: preprocess.fit(result.pictures.picture(i))[0] for i in shown}
    return Neighbors(layer, metric, names, fitted, query_labels, feature_i.cpu(), feature_d.cpu(), pixel_i.cpu(),
                     pixel_d.cpu(), _gather(looks, feature_i), _gather(looks, pixel_i), labels, result.class_names)


def features_of(model: Model, pictures: Sequence[Tensor], layer: str, pooling: str) -> Tensor:
    """Features ``[B,D]`` of ``pictures`` at ``layer``, pooled exactly as a scan pools them."""
    inputs = model.prepare(list(pictures))
    with inspection_mode(model.net), capture(model.net, [layer], detach=True) as store, torch.inference_mode():
        model.net(inputs)
    recorder = LayerRecorder(layer, 1)
    images = torch.arange(len(pictures), device=inputs.device)
    return recorder.observe(store.activation(layer), images, pooling).features


def _pixel_nearest(result: ScanResult, fitted: Tensor, k: int, own: Tensor, device: torch.device,
                   batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """Exact L2 neighbours of the fitted query pictures among all scanned pictures (one streaming pass)."""
    search = RunningNearest(fitted.flatten(1).float().to(device), k, own, result.count)
    loader = DataLoader(FittedPictures(result.pictures, result.preprocess), batch_size=batch_size)
    for indices, pictures, _ in loader:
        search.add(_distances(search.queries, pictures.flatten(1).float().to(device), "euclidean"), indices)
    return search.indices, search.distances


def _gather(looks: dict[int, Tensor], indices: Tensor) -> Tensor:
    return torch.stack([torch.stack([looks[int(i)] for i in row]) for row in indices.cpu()])
