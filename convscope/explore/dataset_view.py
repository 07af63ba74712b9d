"""Data set view (from a scan folder): the embedding of a layer's features, thumbnails, nearest neighbours
in feature vs pixel space, dead filters and per-channel statistics."""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from convscope import progress
from convscope.explore.disk import read_tensor, write_tensor
from convscope.explore.encode import png
from convscope.explore.image_view import explorer_of
from convscope.explore.jobs import CHEAP, INTERACTIVE, SLOW, cache_key
from convscope.explore.state import Explorer
from convscope.inspection.predictions import predict
from convscope.models.model import Model
from convscope.scan.result import ScanResult

router = APIRouter(prefix="/api/scan", tags=["data set"])
ScanLayer = Annotated[str | None, Query(max_length=300, description="a scanned layer (default: the last)")]
Index = Annotated[int, Query(ge=0, le=100_000_000)]


def scan_of(request: Request) -> ScanResult:
    return explorer_of(request).opened_scan()


def embedding_methods() -> list[str]:
    """The maps this installation can draw: PCA always, t-SNE with openTSNE, UMAP with umap-learn."""
    extras = {"tsne": "openTSNE", "umap": "umap"}
    return ["pca"] + [method for method, package in extras.items() if importlib.util.find_spec(package) is not None]


def check_index(scan: ScanResult, index: int) -> int:
    if not 0 <= index < scan.count:
        raise ValueError(f"picture {index} is not in the scan (0 … {scan.count - 1})")
    return index


def embedding(scan: ScanResult, layer: str | None, method: str, max_points: int | None) -> dict[str, Any]:
    found = scan.embed(layer, method=method, max_points=max_points)
    points = found.points.float()
    return {"layer": found.layer, "method": found.method, "note": found.note,
            "x": [round(v, 5) for v in points[:, 0].tolist()], "y": [round(v, 5) for v in points[:, 1].tolist()],
            "indices": found.indices.tolist(), "labels": found.labels.tolist(),
            "class_names": found.class_names}


def neighbour_table(scan: ScanResult, index: int, layer: str | None, k: int) -> dict[str, Any]:
    found = scan.neighbors([index], layer, k=k)
    names = scan.class_names

    def rows(indices: Any, distances: Any) -> list[dict[str, Any]]:
        return [{"index": int(i), "distance": float(d), "label": int(scan.labels[i]),
                 "class": names[int(scan.labels[i])] if names and int(scan.labels[i]) >= 0 else None}
                for i, d in zip(indices[0].tolist(), distances[0].tolist(), strict=True)]

    feature_share, pixel_share = found.agreement()
    return {"index": index, "layer": found.layer, "metric": found.metric,
            "label": int(scan.labels[index]), "feature": rows(found.feature_indices, found.feature_distances),
            "pixel": rows(found.pixel_indices, found.pixel_distances),
            "agreement": {"feature": None if feature_share != feature_share else feature_share,
                          "pixel": None if pixel_share != pixel_share else pixel_share}}


def scan_predictions(explorer: Explorer, batch: int = 256, model: Model | None = None) -> list[int]:
    """The model's top class for every scanned picture (read from the disk cache, or computed and stored there)."""
    scan = explorer.opened_scan()
    folder = hashlib.sha1(str(scan.folder.resolve()).encode()).hexdigest()[:16]
    path = explorer.cache_dir / "predictions" / f"{explorer.fingerprint[:16]}_{folder}_{scan.count}.pt"
    kept = read_tensor(path, (scan.count,), torch.long)  # a damaged file is computed again
    if kept is not None:
        return kept.tolist()
    found = torch.empty(scan.count, dtype=torch.long)
    for start in progress.progress_bar(range(0, scan.count, batch), desc="batches", enabled=False):  # for /api/queue
        stop = min(scan.count, start + batch)
        found[start:stop] = predict(model or explorer.model, [scan.pictures.picture(i) for i in range(start, stop)],
                                    k=1).indices[:, 0]
    write_tensor(path, found)
    return found.tolist()


# The handlers below that read the scan's files are plain functions: FastAPI runs them on its thread pool, so
# that a data set being opened (seconds for Fashion-MNIST) does not hold up other requests.
@router.get("", summary="The open scan: layers, shapes, picture count, class names")
def scan_info(request: Request) -> dict[str, Any]:
    scan = scan_of(request)
    return {"folder": str(scan.folder), "count": scan.count, "layers": scan.layers,
            "shapes": {layer: list(scan.shape(layer)) for layer in scan.layers}, "methods": embedding_methods(),
            "class_names": scan.class_names, "model": scan.config["model"]["name"],
            "same_model": explorer_of(request).scan_matches_model}


@router.get("/embedding", summary="PCA / t-SNE / UMAP coordinates of a layer's features, with labels")
async def embedding_route(request: Request, layer: ScanLayer = None,
                          method: Annotated[str, Query(pattern="^(pca|tsne|umap)$")] = "pca",
                          max_points: Annotated[int | None, Query(ge=10, le=10_000_000)] = None) -> dict[str, Any]:
    scan, explorer = scan_of(request), explorer_of(request)
    layer = scan.check_layer(layer)
    limit = max_points if max_points is not None else (None if method == "pca" else 5000)
    result, _ = await explorer.scan_worker.run(cache_key("embed", str(scan.folder), layer, method, limit),
                                          lambda: embedding(scan, layer, method, limit),
                                          priority=CHEAP if method == "pca" else SLOW,
                                          description=f"{method} of {layer}", request=request)
    return result


@router.get("/predictions", summary="The model's top class for every scanned picture (scan of this model only)")
async def predictions_route(request: Request) -> dict[str, Any]:
    scan, explorer = scan_of(request), explorer_of(request)
    if not explorer.scan_matches_model:
        raise ValueError(f"the scan was made with {scan.config['model']['name']}, not with the model served; start "
                         f"the explorer with --model {scan.config['model']['name']} to colour by prediction")
    result, _ = await explorer.background.run(
        cache_key("scan predictions", str(scan.folder), explorer.fingerprint),
        lambda: scan_predictions(explorer, model=explorer.background_model), priority=SLOW,
        description=f"predictions for {scan.count} scanned pictures", request=request)
    return {"predicted": result, "class_names": explorer.model.classes()}


@router.get("/thumb.png", summary="A scanned picture", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def thumb(request: Request, index: Index) -> Response:
    scan = scan_of(request)
    check_index(scan, index)
    picture = scan.pictures.picture(index)
    if max(picture.shape[-2:]) > 160:  # a thumbnail, not the full photo
        picture = scan.preprocess.fit([picture])[0]
    return Response(png(picture), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/neighbors", summary="Nearest scanned pictures in feature space and in pixel space")
async def neighbors_route(request: Request, index: Index, layer: ScanLayer = None,
                          k: Annotated[int, Query(ge=1, le=64)] = 8) -> dict[str, Any]:
    scan, explorer = scan_of(request), explorer_of(request)
    check_index(scan, index)
    layer = scan.check_layer(layer)
    result, _ = await explorer.scan_worker.run(cache_key("neighbors", str(scan.folder), layer, index, k),
                                          lambda: neighbour_table(scan, index, layer, k), priority=INTERACTIVE,
                                          description=f"neighbours of #{index}", request=request)
    return result


@router.get("/dead", summary="Channels that (almost) never fire on the scanned set")
def dead(request: Request, layer: ScanLayer = None,
               max_active: Annotated[float, Query(ge=0, le=1)] = 0.01) -> dict[str, Any]:
    scan = scan_of(request)
    found = scan.dead_filters(layer, max_active=max_active)
    return {"layer": scan.check_layer(layer), "max_active": max_active, "channels": found.channels,
            "lines": found.lines()}


@router.get("/statistics", summary="Per-channel statistics over the scanned set")
def statistics(request: Request, layer: ScanLayer = None) -> dict[str, Any]:
    scan = scan_of(request)
    stats = scan.statistics(layer)
    return {"layer": scan.check_layer(layer), "channels": [stats.row(c) for c in range(stats.channels)]}
