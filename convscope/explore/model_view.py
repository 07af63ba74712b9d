"""Model view: the filters of any convolution and the per-layer statistics table and figure."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from convscope.explore.encode import data_url
from convscope.explore.image_view import PictureId, class_index, explorer_of, picture_of
from convscope.explore.jobs import CHEAP, cache_key
from convscope.inspection.filters import filters
from convscope.inspection.statistics import layer_statistics
from convscope.models.layers import conv_layers

router = APIRouter(prefix="/api/model", tags=["model"])


def finite(value: Any) -> Any:
    """JSON has no NaN: non-finite numbers become ``None``."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


@router.get("/convolutions", summary="The model's convolutions (layers that have filters)")
async def convolutions(request: Request) -> dict[str, Any]:
    return {"layers": conv_layers(explorer_of(request).model.net)}


@router.get("/filters", summary="A convolution's filters as a picture (default: the first convolution)")
async def filters_route(request: Request, layer: Annotated[str | None, Query(max_length=300)] = None,
                        max_filters: Annotated[int, Query(ge=1, le=1024)] = 64) -> dict[str, Any]:
    explorer = explorer_of(request)

    def work() -> dict[str, Any]:
        view = filters(explorer.model, layer)
        return {"layer": view.layer, "kind": view.kind, "shape": list(view.weight.shape),
                "image": data_url(view.picture(max_filters=max_filters))}

    result, _ = await explorer.worker.run(cache_key("filters", explorer.fingerprint, layer, max_filters), work,
                                          priority=CHEAP, description=f"filters of {layer or 'the first conv'}",
                                          request=request)
    return result


@router.get("/statistics", summary="Per-layer statistics of activations, gradients and weights for a picture")
async def statistics_route(request: Request, pic: PictureId,
                           target: Annotated[str, Query(max_length=200)] = "top") -> dict[str, Any]:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    index = class_index(explorer.model, target)

    def work() -> dict[str, Any]:
        stats = layer_statistics(explorer.model, [loaded.pixels], index)
        rows = [{k: finite(v) if not isinstance(v, tuple) else list(v) for k, v in row.items()}
                for row in stats.table()]
        return {"target": stats.target_description, "rows": rows, "image": data_url(stats.picture())}

    result, _ = await explorer.worker.run(cache_key("statistics", explorer.fingerprint, loaded.digest, index), work,
                                          priority=CHEAP, description=f"layer statistics of {loaded.name}",
                                          request=request)
    return result
