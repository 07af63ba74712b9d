"""Image view: the picture, its top-k classes, every attribution method's map, live occlusion."""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from typing import Annotated, Any

import torch
from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from convscope.attribution.explain import explain
from convscope.attribution.occlusion import occlude, occluder_fill
from convscope.attribution.registry import METHODS
from convscope.explore.encode import data_url, png
from convscope.explore.jobs import CHEAP, INTERACTIVE, SLOW, cache_key
from convscope.explore.method_settings import parse_settings, settings_of
from convscope.explore.pictures import MAX_BYTES, Loaded
from convscope.explore.state import Explorer
from convscope.hooks import inspection_mode
from convscope.inspection.predictions import predict
from convscope.models.model import Model

# Cheap methods first (one or two passes), then the ones that take many passes.
METHOD_ORDER = ("grad_cam", "cam", "grad_cam_plus_plus", "layer_cam", "hires_cam", "grad_cam_element_wise",
                "xgrad_cam", "eigen_cam", "eigen_grad_cam", "kpca_cam", "shapley_cam", "finer_cam",
                "layer_gradient_x_activation", "layer_deep_lift", "saliency", "input_x_gradient", "guided_backprop",
                "deconvnet", "guided_grad_cam", "deep_lift", "full_grad", "smooth_grad", "integrated_gradients",
                "noise_tunnel", "gradient_shap", "deep_lift_shap", "layer_conductance", "internal_influence",
                "occlusion", "feature_ablation", "shapley_value_sampling", "lime", "kernel_shap", "score_cam",
                "ablation_cam")
SLOW_METHODS = ("smooth_grad", "integrated_gradients", "noise_tunnel", "gradient_shap", "deep_lift_shap",
                "layer_conductance", "internal_influence", "occlusion", "feature_ablation", "shapley_value_sampling",
                "lime", "kernel_shap", "score_cam", "ablation_cam")

router = APIRouter(prefix="/api", tags=["image"])

PictureId = Annotated[str, Query(description="picture id: sample:NAME, file:N/PATH or upload:HASH", max_length=1024)]


def explorer_of(request: Request) -> Explorer:
    return request.app.state.explorer


async def picture_of(request: Request, pic: str) -> Loaded:
    """The picture ``pic``, decoded off the event loop (a large one takes seconds; the server answers meanwhile)."""
    return await run_in_threadpool(explorer_of(request).pictures.load, pic)


def class_index(model: Model, target: str) -> int | None:
    """A class given by index or name → its index; ``''``/``'top'`` → ``None`` (the top class)."""
    text = target.strip()
    if text in ("", "top"):
        return None
    count = len(model.classes())
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < count:
            raise ValueError(f"class index {index} is out of range: the model has {count} classes (0 … {count - 1})")
        return index
    return model.class_index(text)


def fitted(model: Model, picture: Loaded) -> torch.Tensor:
    """The picture as the model sees it (resized and cropped), ``[3,H,W]`` in [0, 1]."""
    return model.preprocess.fit([picture.pixels])[0]


def predictions(model: Model, picture: Loaded, k: int) -> dict[str, Any]:
    found = predict(model, picture.pixels, k=k)
    return {"picture": picture.id, "name": picture.name,
            "top": [{"index": i, "name": n, "probability": p} for i, n, p in
                    zip(found.indices[0].tolist(), found.names[0], found.probabilities[0].tolist(), strict=True)]}


def method_settings(name: str, layer: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The constructor settings a method ran with (its defaults, overridden by ``options``)."""
    parameters = inspect.signature(METHODS[name].__init__).parameters
    settings = {p.name: p.default for p in parameters.values()
                if p.default is not inspect.Parameter.empty and p.name not in ("progress", "batch_size")}
    settings.update({k: v for k, v in options.items() if k not in ("progress",)})
    if layer is not None:
        settings["layer"] = layer
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in settings.items() if v is not None}


CHUNK = 4  # pictures per forward pass of a slow method: the background lane pauses between two chunks


def explanation(model: Model, picture: Loaded, method: str, target: int | None, layer: str | None,
                options: dict[str, Any], chunked: bool = False) -> dict[str, Any]:
    """One method's map (alone and over the picture) with the label and the settings that made it; ``chunked``:
    in small batches (each a point where the job can pause or stop)."""
    began = time.perf_counter()
    accepted = inspect.signature(METHODS[method].__init__).parameters
    quiet: dict[str, object] = {"progress": False} if "progress" in accepted else {}
    if chunked and "batch_size" in accepted:
        quiet["batch_size"] = CHUNK
    result = explain(model, picture.pixels, method, "top" if target is None else target, layer=layer,
                     **options, **quiet)
    shown = result.overlay() if result.method.style == "heat" else result.map_picture()
    heat = result.heat[0].detach().float().cpu()
    top = float(heat.abs().max())
    independent = method in MAY_IGNORE_THE_PICTURE and ignores_the_picture(model, result.maps, method, picture,
                                                                          target, layer, options)
    return {"method": method, "independent": independent, "title": result.method.title, "paper": result.method.paper,
            "style": result.method.style, "label": result.labels[0], "layer": result.layer,
            "settings": method_settings(method, result.layer, options),
            "image": data_url(shown), "map": data_url(result.map_picture()), "overlay": data_url(result.overlay()),
            "scale": shown_scale(result.method.style, result.maps[0], heat),
            "heat": data_url(heat / top if top > 0 else heat), "heat_max": top,
            "seconds": round(time.perf_counter() - began, 3)}


def shown_scale(style: str, maps: torch.Tensor, heat: torch.Tensor) -> dict[str, Any]:
    """The colour bar of the picture shown for a map (``image``): its colour map (``None``: the signed gradient
    as an image, grey at 0) and the values at its two ends, as :func:`convscope.attribution.explain.map_scale_bar`
    and ``heat_scale_bar`` draw them."""
    if style == "image":
        top = float(torch.quantile(maps.detach().float().abs().flatten(), 0.995))
        return {"cmap": None, "low": -top, "high": top, "what": "per channel, clipped at 99.5 % of |v|"}
    if style == "saliency":
        top = float(torch.quantile(heat.abs().flatten(), 0.995))
        return {"cmap": "gray", "low": 0.0, "high": top, "what": "clipped at 99.5 %"}
    return {"cmap": "jet", "low": 0.0, "high": float(heat.abs().max()), "what": "over the picture"}


MAY_IGNORE_THE_PICTURE = ("deconvnet",)  # without max-pooling switches its map is one for all pictures


def ignores_the_picture(model: Model, maps: torch.Tensor, method: str, picture: Loaded, target: int | None,
                        layer: str | None, options: dict[str, Any]) -> bool:
    """True when ``method`` gives the same map (to 1e-4 of its largest value) for a seeded random picture: it then
    shows the model, not this picture — a deconvnet through a network without max-pooling switches, such as
    EfficientNet-Lite (Zeiler & Fergus's projection reads the switches of the picture's forward pass)."""
    if not maps.abs().max() > 0:
        return False  # an empty map says nothing either way
    if target is None:
        with inspection_mode(model.net), torch.no_grad():
            target = int(model.net(model.prepare([picture.pixels])).argmax(1)[0])
    other = torch.rand(3, *model.preprocess.input_size, generator=torch.Generator().manual_seed(0))
    again = explain(model, other, method, target, layer=layer, **options).maps
    scale = maps.abs().max()
    return bool((maps - again).abs().max() / scale < 1e-4)


_prepared: OrderedDict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()


def prepared(model: Model, picture: Loaded, fingerprint: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's input ``[1,C,H,W]`` for a picture and its clean probabilities (kept for the last few pictures,
    so that each move of the live occluder costs one forward pass)."""
    key = (fingerprint, picture.digest)
    if key not in _prepared:
        inputs = model.prepare([picture.pixels])
        with inspection_mode(model.net), torch.no_grad():
            clean = model.net(inputs).float().softmax(1)[0].cpu()
        _prepared[key] = inputs, clean
        while len(_prepared) > 8:
            _prepared.popitem(last=False)
    _prepared.move_to_end(key)
    return _prepared[key]


def occluded_prediction(model: Model, picture: Loaded, x: int, y: int, size: int, target: int | None,
                        fingerprint: str, k: int = 5) -> dict[str, Any]:
    """Class probabilities with a grey square (the occlusion method's fill) at (``x``, ``y``) of the model's input."""
    inputs, clean = prepared(model, picture, fingerprint)
    height, width = inputs.shape[-2:]
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"the occluder's corner ({x}, {y}) is outside the {width}×{height} input")
    corner = torch.tensor([y], device=inputs.device), torch.tensor([x], device=inputs.device)
    occluded = occlude(inputs, *corner, size, occluder_fill("mean", inputs, model))
    with inspection_mode(model.net), torch.no_grad():
        now = model.net(occluded).float().softmax(1)[0].cpu()
    chosen = int(clean.argmax()) if target is None else target
    names = model.classes(len(now))
    top_p, top_i = now.topk(min(k, len(now)))
    return {"x": x, "y": y, "size": size, "target": {"index": chosen, "name": names[chosen]},
            "probability": float(now[chosen]), "clean_probability": float(clean[chosen]),
            "top": [{"index": i, "name": names[i], "probability": p}
                    for i, p in zip(top_i.tolist(), top_p.tolist(), strict=True)]}


@router.get("/pictures", summary="Every picture that can be explored")
async def pictures(request: Request) -> dict[str, Any]:
    return {"pictures": explorer_of(request).pictures.listing()}


@router.post("/upload", summary="Upload a picture (≤ 20 MB, ≤ 50 megapixels); returns its id")
async def upload(request: Request, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    data = await file.read(MAX_BYTES + 1)
    loaded = await run_in_threadpool(explorer_of(request).pictures.add_upload, data, file.filename or "upload")
    return {"id": loaded.id, "name": loaded.name, "size": list(loaded.pixels.shape[-2:])}


@router.get("/picture.png", summary="The picture as the model sees it (resized, cropped)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def picture_png(request: Request, pic: PictureId) -> Response:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    key = cache_key("picture", explorer.model.name, loaded.digest)
    data = explorer.worker.cache.get(key)
    if data is None:  # resizing needs no model: never waits behind the model's jobs
        data = await run_in_threadpool(lambda: png(fitted(explorer.model, loaded)))
        explorer.worker.cache.put(key, data)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/classes", summary="The model's class names (for completion)")
async def classes(request: Request) -> dict[str, Any]:
    return {"classes": explorer_of(request).model.classes()}


@router.get("/methods", summary="The attribution methods, cheapest first, with their papers")
async def methods(request: Request) -> dict[str, Any]:
    explorer = explorer_of(request)
    order = [m for m in METHOD_ORDER if m in explorer.methods] + [m for m in explorer.methods if m not in METHOD_ORDER]
    return {"methods": [{"name": m, "title": METHODS[m].title, "paper": METHODS[m].paper, "slow": m in SLOW_METHODS,
                         "style": METHODS[m].style, "settings": settings_of(m), "checks": explorer.checks.get(m)}
                        for m in order]}


@router.get("/predict", summary="Top-k classes of a picture")
async def predict_route(request: Request, pic: PictureId, k: Annotated[int, Query(ge=1, le=100)] = 5) -> dict[str, Any]:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    result, _ = await explorer.worker.run(cache_key("predict", explorer.fingerprint, loaded.digest, k),
                                          lambda: predictions(explorer.model, loaded, k), priority=INTERACTIVE,
                                          description=f"predict {loaded.name}", request=request)
    return result


@router.get("/explain", summary="One attribution method's map for a class of a picture, with the settings the "
                                "method takes (see /api/methods)")
async def explain_route(request: Request, pic: PictureId, method: Annotated[str, Query(max_length=40)],
                        target: Annotated[str, Query(max_length=200)] = "top",
                        layer: Annotated[str | None, Query(max_length=300)] = None,
                        baseline: Annotated[str | None, Query(max_length=20, description="black, mean or a grey "
                                                                                         "level in [0, 1]")] = None,
                        samples: Annotated[int | None, Query(description="noisy copies / random orders")] = None,
                        noise: Annotated[float | None, Query(description="noise, a fraction of the range")] = None,
                        steps: Annotated[int | None, Query(description="integration steps")] = None,
                        size: Annotated[int | None, Query(description="occluder size")] = None,
                        stride: Annotated[int | None, Query(description="occluder stride")] = None,
                        group: Annotated[str | None, Query(max_length=100, description="for /api/cancel")] = None,
                        ) -> dict[str, Any]:
    explorer = explorer_of(request)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the methods are " + ", ".join(METHOD_ORDER))
    loaded = await picture_of(request, pic)
    index = class_index(explorer.model, target)
    given = {"layer": layer, "baseline": baseline, "samples": samples, "noise": noise, "steps": steps,
             "size": size, "stride": stride}
    options = parse_settings(explorer.model, method, {k: None if v is None else str(v) for k, v in given.items()})
    layer = options.pop("layer", None)
    result, cached = await explained(request, loaded, method, index, layer, options, group)
    return {**result, "cached": cached, "checks": explorer.checks.get(method)}


async def explained(request: Request, loaded: Loaded, method: str, index: int | None, layer: str | None,
                    options: dict[str, Any], group: str | None) -> tuple[dict[str, Any], bool]:
    """A map from the cache or its lane: the slow methods on the background lane, in chunks."""
    explorer = explorer_of(request)
    key = cache_key("explain", explorer.fingerprint, loaded.digest, method, index, layer, options)
    slow = method in SLOW_METHODS
    worker, model = (explorer.background, explorer.background_model) if slow else (explorer.worker, explorer.model)
    return await worker.run(
        key, lambda: explanation(model, loaded, method, index, layer, options, chunked=slow),
        priority=SLOW if slow else CHEAP, description=f"{METHODS[method].title} on {loaded.name}",
        group=group, request=request)


@router.get("/colormaps", summary="The colour maps of the maps' colour bars, 256 RGB triples each")
async def colormaps() -> dict[str, Any]:
    from convscope.render.colormaps import _lut

    return {name: (_lut(name) * 255).round().int().tolist() for name in ("jet", "gray", "inferno", "bwr")}


@router.get("/occlude", summary="Live occlusion: probabilities with a grey square at (x, y) of the model's input")
async def occlude_route(request: Request, pic: PictureId, x: Annotated[int, Query(ge=0, le=4096)],
                        y: Annotated[int, Query(ge=0, le=4096)], size: Annotated[int, Query(ge=1, le=1024)] = 48,
                        target: Annotated[str, Query(max_length=200)] = "top") -> dict[str, Any]:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    index = class_index(explorer.model, target)
    key = cache_key("occlude", explorer.fingerprint, loaded.digest, x, y, size, index)
    result, cached = await explorer.worker.run(
        key, lambda: occluded_prediction(explorer.model, loaded, x, y, size, index, explorer.fingerprint),
        priority=INTERACTIVE, description=f"live occlusion on {loaded.name}", request=request)
    return {**result, "cached": cached}

