"""Relevance views: which channels of a layer carried a class's relevance for the picture (concept relevance
propagation), and where each one looked (its conditional heat map).

Achtibat et al. 2023, https://doi.org/10.1038/s42256-023-00711-8. The ranking is one LRP pass on the interactive
lane; each channel's conditional map is one more LRP pass, asked for one by one, on the background lane (so a
page that moves on cancels the rest).
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from fastapi import APIRouter, Query, Request

from convscope.attribution.concept_figure import relevance_colours
from convscope.attribution.concepts import channel_relevance, conditional_relevance
from convscope.attribution.lrp_composites import NAMES
from convscope.explore.encode import data_url
from convscope.explore.image_view import PictureId, class_index, explorer_of, picture_of
from convscope.explore.jobs import CHEAP, SLOW, cache_key
from convscope.explore.pictures import Loaded
from convscope.hooks import inspection_mode
from convscope.models.model import Model

router = APIRouter(prefix="/api/relevance", tags=["relevance"])

Layer = Annotated[str, Query(max_length=300, description="a layer with feature maps, e.g. blocks.4")]
Target = Annotated[str, Query(max_length=200, description="class index or name; top: the top class")]
Composite = Annotated[str, Query(max_length=40, description="LRP composite: " + ", ".join(NAMES))]


def chosen_class(model: Model, picture: Loaded, target: int | None) -> tuple[int, str]:
    """The class explained (the top one when ``target`` is ``None``) and its name."""
    if target is None:
        with inspection_mode(model.net), torch.no_grad():
            target = int(model.net(model.prepare([picture.pixels])).argmax(1)[0])
    return target, model.classes()[target]


def ranking(model: Model, picture: Loaded, layer: str, target: int | None, composite: str) -> dict[str, Any]:
    """Every channel of ``layer`` with its relevance for the class and its share of the layer's |relevance|,
    most relevant first."""
    index, name = chosen_class(model, picture, target)
    per_channel = channel_relevance(model, model.prepare([picture.pixels]), index, layer, composite=composite)[0]
    per_channel = per_channel.float().cpu()
    scale = float(per_channel.abs().sum().clamp_min(1e-12))
    order = per_channel.argsort(descending=True).tolist()
    return {"layer": layer, "composite": composite, "class": {"index": index, "name": name},
            "total": float(per_channel.sum()), "count": len(order),
            "channels": [{"channel": c, "relevance": float(per_channel[c]), "share": float(per_channel[c]) / scale}
                         for c in order]}


def conditional(model: Model, picture: Loaded, layer: str, channel: int, target: int | None,
                composite: str) -> dict[str, Any]:
    """One channel's relevance for the class, its rank in the layer, and its conditional heat map."""
    found = ranking(model, picture, layer, target, composite)
    if not 0 <= channel < found["count"]:
        raise ValueError(f"channel {channel} is out of range: {layer} has channels 0 … {found['count'] - 1}")
    rank = next(n for n, row in enumerate(found["channels"]) if row["channel"] == channel)
    maps = conditional_relevance(model, model.prepare([picture.pixels]), found["class"]["index"], layer, [channel],
                                 composite=composite)
    summed = maps.sum(1)[0].float().cpu()
    top = float(torch.quantile(summed.abs().flatten(), 0.995))
    return {**found["channels"][rank], "rank": rank + 1, "of": found["count"], "layer": layer,
            "class": found["class"], "composite": composite, "map": data_url(relevance_colours(maps)[0]),
            "scale": {"cmap": "bwr", "low": -top, "high": top, "what": "relevance summed over colours, "
                      "clipped at 99.5 % of |R|"}}


def check_composite(composite: str) -> str:
    if composite not in NAMES:
        raise ValueError(f"unknown LRP composite {composite!r}; the composites are " + ", ".join(NAMES))
    return composite


@router.get("", summary="Each channel of a layer with its relevance for a class of the picture (CRP), most "
                        "relevant first")
async def relevance_route(request: Request, pic: PictureId, layer: Layer, target: Target = "top",
                          composite: Composite = "epsilon-plus-flat",
                          group: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    index = class_index(explorer.model, target)
    explorer.model.layer(layer)
    check_composite(composite)
    result, _ = await explorer.worker.run(
        cache_key("relevance", explorer.fingerprint, loaded.digest, layer, index, composite),
        lambda: ranking(explorer.model, loaded, layer, index, composite), priority=CHEAP,
        description=f"relevance of {layer} on {loaded.name}", group=group, request=request)
    return result


@router.get("/channel", summary="One channel's relevance for a class of the picture and its conditional heat map "
                                "(CRP)")
async def channel_route(request: Request, pic: PictureId, layer: Layer,
                        channel: Annotated[int, Query(ge=0, le=100_000)], target: Target = "top",
                        composite: Composite = "epsilon-plus-flat",
                        group: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    index = class_index(explorer.model, target)
    explorer.model.layer(layer)
    check_composite(composite)
    result, _ = await explorer.background.run(
        cache_key("conditional relevance", explorer.fingerprint, loaded.digest, layer, channel, index, composite),
        lambda: conditional(explorer.background_model, loaded, layer, channel, index, composite), priority=SLOW,
        description=f"relevance of {layer} #{channel} on {loaded.name}", group=group, request=request)
    return result
