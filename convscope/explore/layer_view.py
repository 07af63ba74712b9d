"""Layer view: layers with shapes; every channel's activation map; one channel's projections, feature
visualisation (optimised on demand, cached on disk) and top-9 patches from a scan."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Query, Request

from convscope.attribution.deconvnet import Deconvnet
from convscope.attribution.explain import render_map
from convscope.attribution.guided_backprop import GuidedBackprop
from convscope.cli.common import slug
from convscope.explore.disk import read_json, read_png, write_atomically
from convscope.explore.encode import data_url, png
from convscope.explore.image_view import PictureId, explorer_of, fitted, picture_of
from convscope.explore.jobs import CHEAP, INTERACTIVE, SLOW, cache_key
from convscope.explore.pictures import Loaded
from convscope.explore.state import Explorer
from convscope.hooks import inspection_mode
from convscope.inspection.activations import activation_maps
from convscope.models.layers import describe_layers
from convscope.models.model import Model
from convscope.render.colormaps import colorize, normalize
from convscope.render.overlay import overlay
from convscope.synthesis.feature_vis import visualise_features
from convscope.targets import Channel

router = APIRouter(prefix="/api", tags=["layer"])
MAX_FEATURE_WORK = 512 * 128 * 128  # steps × pixels of one feature visualisation (512 steps at 128 px)
Layer = Annotated[str, Query(max_length=300, description="dotted layer name (see /api/layers)")]
ChannelNumber = Annotated[int, Query(ge=0, le=1_000_000)]


def layer_table(model: Model) -> list[dict[str, Any]]:
    example = model.prepare([torch.zeros(model.preprocess.channels, *model.preprocess.input_size)])
    return [{"name": info.name, "kind": info.kind, "shape": list(info.output_shape or []),
             "parameters": info.parameters, "maps": len(info.output_shape or []) == 3}
            for info in describe_layers(model.net, example)]


def channel_atlas(model: Model, picture: Loaded, layer: str) -> dict[str, Any]:
    """Every channel's map, strongest (mean activation) first, in one atlas picture; dead channels flagged."""
    found = activation_maps(model, picture.pixels, layer)
    maps = found.maps
    channels, height, width = maps.shape
    strength = maps.flatten(1).mean(1)
    order = strength.argsort(descending=True, stable=True)
    columns = max(1, min(channels, 2048 // max(width, 1), 32))
    rows = -(-channels // columns)
    tiles = colorize(normalize(maps[order], "minmax"), "inferno")  # each map scaled to its own range
    atlas = torch.zeros(3, rows * height, columns * width)
    for n in range(channels):
        r, c = divmod(n, columns)
        atlas[:, r * height:(r + 1) * height, c * width:(c + 1) * width] = tiles[n]
    return {"layer": found.layer, "shape": list(maps.shape), "columns": columns, "cell": [height, width],
            "atlas": data_url(atlas), "dead": int(found.dead.sum()),
            "channels": [{"index": int(c), "mean": float(strength[c]), "max": float(maps[c].max()),
                          "zero": float(found.zero_fraction[c]), "dead": bool(found.dead[c])} for c in order]}


def channel_detail(explorer: Explorer, picture: Loaded, layer: str, channel: int) -> dict[str, Any]:
    """One channel: its map over the picture, its deconvnet and guided-backprop projections, its top patches."""
    model = explorer.model
    found = activation_maps(model, picture.pixels, layer)
    if not 0 <= channel < found.maps.shape[0]:
        raise ValueError(f"channel {channel} is out of range: {found.layer} has {found.maps.shape[0]} channels")
    shown = fitted(model, picture)
    activation = found.maps[channel]
    blank = torch.zeros(shown.shape[-2:])
    inputs = model.prepare([picture.pixels])
    views: dict[str, Any] = {"activation": data_url(overlay(shown, activation.clamp_min(0), mode="minmax"))}
    notes: dict[str, str] = {}
    projections = {"deconvnet": lambda x: Deconvnet(model).project(x, layer, channel),
                   "guided_backprop": lambda x: GuidedBackprop(model)(x, Channel(layer, channel))}
    independent = []
    for name, project in projections.items():
        try:
            projected = project(inputs)
        except ValueError as error:  # e.g. activations without a backward rule
            notes[name] = str(error)
            continue
        views[name] = data_url(render_map("image", projected[0].cpu(), blank))
        if name == "deconvnet" and same_for_another_picture(projected, project, inputs):
            independent.append(name)
    result = {"layer": found.layer, "channel": channel, "dead": bool(found.dead[channel]), "independent": independent,
              "mean": float(activation.mean()), "max": float(activation.max()),
              "zero": float(found.zero_fraction[channel]), "views": views, "notes": notes, "patches": None}
    scan = explorer.scan
    if scan is not None and found.layer in scan.layers and explorer.scan_matches_model:
        patches = scan.top_patches(found.layer, [channel])  # as many as the scan kept (9 by default)
        result["patches"] = data_url(patches.picture(context=True))
    elif scan is not None:
        notes["patches"] = (f"the scan recorded {', '.join(scan.layers)}" if explorer.scan_matches_model
                            else "the scan was made with another model")
    return result


def same_for_another_picture(found: torch.Tensor, project, inputs: torch.Tensor) -> bool:
    """Whether ``project`` gives ``found`` again (to 1e-4 of its largest value) for a seeded random input: then the
    projection shows the model, not this picture (a deconvnet without max-pooling switches)."""
    if not found.abs().max() > 0:
        return False  # an empty map (a channel silent on this picture) says nothing either way
    other = torch.rand(inputs.shape, generator=torch.Generator().manual_seed(0)).to(inputs) * 4 - 2
    scale = found.abs().max()
    return bool((found - project(other)).abs().max() / scale < 1e-4)


def feature_picture(explorer: Explorer, layer: str, channel: int, steps: int, size: int,
                    model: Model | None = None) -> dict[str, Any]:
    """The channel's feature visualisation, read from the disk cache or optimised now and stored there."""
    folder = explorer.cache_dir / "features" / explorer.fingerprint[:16]
    stem = folder / f"{slug(layer)}_{channel}_{steps}_{size}"
    meta = read_json(stem.with_suffix(".json"), ("layer", "channel", "activation", "size", "steps"))
    data = read_png(stem.with_suffix(".png"), size) if meta is not None else None
    if meta is not None and data is not None:  # both files whole (a damaged one is computed again)
        return {**meta, "image": "data:image/png;base64," + base64.b64encode(data).decode(), "from_disk": True}
    result = visualise_features(model or explorer.model, layer, channel, steps=steps, size=size, progress=False)
    meta = {"layer": layer, "channel": channel, "activation": float(result.activations[0]), **result.settings}
    write_atomically(stem.with_suffix(".png"), png(result.images[0]))  # the picture first, then what says it is done
    write_atomically(stem.with_suffix(".json"), json.dumps(meta).encode())
    return {**meta, "image": data_url(result.images[0]), "from_disk": False}


def takes_any_size(model: Model) -> bool:
    """Whether the model runs on pictures of another size than its input size (no fixed-size linear head)."""
    side = 128 if max(model.preprocess.input_size) != 128 else 160
    probe = torch.zeros(1, model.preprocess.channels, side, side, device=model.device)
    try:
        with inspection_mode(model.net), torch.no_grad():
            model.net(probe)
    except RuntimeError:
        return False
    return True


@router.get("/layers", summary="Every layer with its type and output shape")
async def layers(request: Request) -> dict[str, Any]:
    explorer = explorer_of(request)
    table, _ = await explorer.worker.run(cache_key("layers", explorer.fingerprint),
                                         lambda: layer_table(explorer.model), priority=INTERACTIVE,
                                         description="layer shapes", request=request)
    return {"layers": table}


@router.get("/activations", summary="Every channel's activation map at a layer, strongest first")
async def activations(request: Request, pic: PictureId, layer: Layer) -> dict[str, Any]:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    explorer.model.layer(layer)
    result, _ = await explorer.worker.run(cache_key("activations", explorer.fingerprint, loaded.digest, layer),
                                          lambda: channel_atlas(explorer.model, loaded, layer), priority=CHEAP,
                                          description=f"activations of {layer}", request=request)
    return result


@router.get("/channel", summary="One channel: activation over the picture, deconvnet / guided-backprop projections, "
                                "top-9 patches (with a scan)")
async def channel(request: Request, pic: PictureId, layer: Layer, channel: ChannelNumber) -> dict[str, Any]:
    explorer = explorer_of(request)
    loaded = await picture_of(request, pic)
    explorer.model.layer(layer)
    result, _ = await explorer.worker.run(
        cache_key("channel", explorer.fingerprint, loaded.digest, layer, channel),
        lambda: channel_detail(explorer, loaded, layer, channel), priority=CHEAP,
        description=f"channel {channel} of {layer}", request=request)
    return result


@router.get("/features", summary="Feature visualisation of a channel (optimised on demand, cached on disk)")
async def features(request: Request, layer: Layer, channel: ChannelNumber,
                   steps: Annotated[int, Query(ge=8, le=2048)] = 128,
                   size: Annotated[int | None, Query(ge=8, le=512, description="picture side (default: 128 px, or "
                                                     "the model's input size when it takes no other)")] = None,
                   ) -> dict[str, Any]:
    explorer = explorer_of(request)
    shapes = {row["name"]: row["shape"] for row in (await layers(request))["layers"]}
    explorer.model.layer(layer)
    shape = shapes.get(layer)
    if not shape or len(shape) != 3:
        raise ValueError(f"{layer} gives {'×'.join(map(str, shape or [])) or 'no tensor'} values, not feature maps: "
                         "feature visualisation here shows a channel of a layer with feature maps (see /api/layers)")
    if channel >= shape[0]:
        raise ValueError(f"channel {channel} is out of range: {layer} gives {shape}")
    free, _ = await explorer.worker.run(cache_key("any size", explorer.fingerprint),
                                        lambda: takes_any_size(explorer.model), priority=INTERACTIVE,
                                        description="sizes the model takes", request=request)
    fixed = max(explorer.model.preprocess.input_size)
    if size is None:
        size = 128 if free else fixed
    elif not free and size != fixed:
        raise ValueError(f"{explorer.model.name} takes only {fixed}×{fixed} pictures; leave size out (or give {fixed})")
    if steps * size * size > MAX_FEATURE_WORK:
        raise ValueError(f"{steps} steps at {size} px is more than a feature visualisation may take in the explorer "
                         f"({MAX_FEATURE_WORK // 128**2} steps at 128 px); use fewer steps or a smaller size (or "
                         "`convscope featviz`, which has no such limit)")
    result, _ = await explorer.background.run(
        cache_key("features", explorer.fingerprint, layer, channel, steps, size),
        lambda: feature_picture(explorer, layer, channel, steps, size, explorer.background_model), priority=SLOW,
        description=f"feature visualisation of {layer} #{channel}", request=request)
    return result
