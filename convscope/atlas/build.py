"""Making an atlas: every channel of the chosen layers, a batch of channels at a time, each written as it is done.

A rerun of the same command resumes: channels whose JSON exists are skipped. Under ``torchrun`` each process
takes every n-th channel still to do; process 0 holds the folder's lock and writes the layer and atlas files.
Seeds depend on the layer and channel only, so neither the batch size, the split over processes nor a resume
changes any picture.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from convscope.atlas import layout
from convscope.atlas.circuits import LINKS, Links, links
from convscope.atlas.layer_order import forward_order
from convscope.atlas.memory_budget import channels_per_batch
from convscope.atlas.ordering import similarity_order
from convscope.atlas.scan_check import check_scan
from convscope.atlas.visualise import Recipe, recipe_for, visualise_channels
from convscope.atlas.working_copy import working_copy
from convscope.logs import get_logger
from convscope.models.model import Model
from convscope.progress import progress_bar
from convscope.scan import storage
from convscope.scan.distributed import Workers, join_workers
from convscope.scan.lock import folder_lock
from convscope.scan.result import ScanResult
from convscope.synthesis.sizes import fixed_input_size, layer_shape
from convscope.validation import output_folder

log = get_logger(__name__)
# settings of atlas.json that must match for a folder to be resumed
IDENTITY = ("format", "model_digest", "input_size", "settings", "scan")
GRADIENT_PICTURES = 4


@dataclass
class LayerPlan:
    """One chosen layer: its output ``shape`` at the model's input size and the channels this run makes."""

    name: str
    shape: tuple[int, ...]
    channels: list[int]
    model_size: tuple[int, int] | None  # the only input size a fixed-size model reads
    batch: int  # channels per optimisation batch


def make_atlas(model: Model, layers: Sequence[str], out: str | Path, *, scan: ScanResult | str | Path | None = None,
               channels: Sequence[int] | None = None, recipe: Recipe | None = None, k: int = 9,
               batch_size: int | None = None, overwrite: bool = False, weights: str | Path | None = None,
               progress: bool = True) -> Path:
    """Write the atlas of ``layers`` of ``model`` into ``out`` (resuming one there) and return the folder.

    ``scan``: a finished scan of this model holding the layers (a folder or a :class:`ScanResult`) for the dataset
    parts (top/bottom patches, projections, statistics, top classes); ``channels``: a subset (default: all);
    ``recipe``: how the pictures are made (default: :func:`~convscope.atlas.visualise.recipe_for` the model's
    input); ``batch_size``: channels optimised together (default: about 24 pictures on a CPU, 64 channels on a
    GPU, fewer when they do not fit); ``weights``: recorded in atlas.json so that the site can say which weights
    were shown.
    """
    recipe = recipe or recipe_for(model.preprocess.channels, min(model.preprocess.input_size))
    out = output_folder(out, "--out")
    if not layers:
        raise ValueError("name at least one layer (`convscope layers` lists them)")
    for layer in layers:
        model.layer(layer)  # an unknown name: one line with the nearest names
    names = forward_order(model, list(dict.fromkeys(layers)))
    digest = storage.fingerprint(model.net)
    result = ScanResult.load(scan) if isinstance(scan, str | Path) else scan
    if result is not None:
        check_scan(result, model, names, digest)
    input_size = (model.preprocess.channels, *model.preprocess.input_size)
    plans = []
    for name in names:
        shape = layer_shape(model, name, model.preprocess.input_size)
        chosen = list(range(shape[0])) if channels is None else sorted(dict.fromkeys(int(c) for c in channels))
        wrong = [c for c in chosen if not 0 <= c < shape[0]]
        if wrong:
            raise ValueError(f"channel {wrong[0]} does not exist: {name!r} has channels 0 … {shape[0] - 1}")
        model_size = fixed_input_size(model, name)
        batch = channels_per_batch(model, name, recipe.size, recipe.group, batch_size, model_size)
        plans.append(LayerPlan(name, shape, chosen, model_size, batch))
    atlas = {"format": layout.FORMAT, "model": model.name, "model_digest": digest,
             "weights": None if weights is None else str(Path(weights).resolve()),
             "trained": not model.name.endswith("(random weights)"), "input_size": list(input_size),
             "layers": [{"name": p.name, "channels": p.shape[0], "shape": list(p.shape),
                         **({"selected": p.channels} if channels is not None else {})} for p in plans],
             "settings": {**recipe.settings(), "k": k, "links": LINKS},
             "scan": None if result is None else {"path": str(Path(result.folder).resolve()),
                                                 "digest": scan_digest(result)},
             "complete": False, "convscope": _version()}
    fast = working_copy(model, names)
    _refuse_unless_computable(fast, plans, recipe)
    team = join_workers()
    if team.main:
        with folder_lock(out, layout.LOCK, "written", wait_hint=""):
            atlas = _prepare(out, atlas, overwrite, team)
            _run(model, fast, plans, out, atlas, result, recipe, k, team, progress)
    else:
        _prepare(out, atlas, overwrite, team)
        _run(model, fast, plans, out, atlas, result, recipe, k, team, progress)
    return out


def scan_digest(result: ScanResult) -> str:
    """A digest of the scan's settings file (which names its model, layers, pictures and their count)."""
    return hashlib.sha1((Path(result.folder) / storage.CONFIG).read_bytes()).hexdigest()[:16]


def _prepare(out: Path, atlas: dict[str, Any], overwrite: bool, team: Workers) -> dict[str, Any]:
    """Check the folder and write atlas.json (process 0); the others wait and read it."""
    if team.main:
        try:
            layout.ATLAS_FILES.check(out, overwrite)
            existing = layout.read_json(out / layout.ATLAS)
            if existing is not None and not overwrite:
                difference = storage.first_difference(existing, atlas, IDENTITY)
                if difference is not None:
                    raise ValueError(f"{str(out)!r} holds another atlas ({difference.said('there', 'now')}); use "
                                     "another --out folder, or --overwrite to replace it")
                known = {layer["name"] for layer in atlas["layers"]}
                atlas["layers"] = [layer for layer in existing["layers"] if layer["name"] not in known] + \
                    atlas["layers"]  # layers of earlier runs stay in the atlas
            elif overwrite:
                layout.ATLAS_FILES.clear(out)
            for temporary in layout.ATLAS_FILES.temporaries(out):
                temporary.unlink(missing_ok=True)
            layout.write_json(out / layout.ATLAS, atlas)
        except BaseException:
            team.all_ok(False)
            raise
    if not team.all_ok(True):
        raise RuntimeError(f"the atlas in {out} cannot be written now (see the first process's error)")
    return layout.read_json(out / layout.ATLAS) or atlas


def _refuse_unless_computable(fast: Model, plans: list[LayerPlan], recipe: Recipe) -> None:
    """Refuse in one line, before anything is written, a precision the model cannot compute in: one step of one
    picture of each layer, as the atlas will make them (``fast``: the working copy)."""
    if recipe.precision == "float32":
        return
    trial = replace(recipe, steps=1, facets=0, negative=False)
    try:
        for plan in plans:
            visualise_channels(fast, plan.name, plan.channels[:1] or [0], trial, model_size=plan.model_size,
                               progress=False)
    except (RuntimeError, NotImplementedError, TypeError) as error:
        raise ValueError(f"this model cannot compute in {recipe.precision} on {fast.device.type} "
                         f"({str(error).splitlines()[0]}); use --precision float32") from None


def _run(model: Model, fast: Model, plans: list[LayerPlan], out: Path, atlas: dict[str, Any],
         result: ScanResult | None, recipe: Recipe, k: int, team: Workers, progress: bool) -> None:
    from convscope.atlas.site import write_site

    chain = _links(model, plans, out, result, team)
    for plan in plans:
        _make_layer(model, fast, plan, out, result, recipe, k, chain, team, progress)
        team.barrier()
        if team.main:
            _finish_layer(out, plan, result)
            _update_atlas(out)
            write_site(out, model, tuple(atlas["input_size"]))
    if team.main:
        _update_atlas(out)
        write_site(out, model, tuple(atlas["input_size"]))


def _make_layer(model: Model, fast: Model, plan: LayerPlan, out: Path, result: ScanResult | None, recipe: Recipe,
                k: int, chain: dict[str, dict[str, Links]], team: Workers,
                progress: bool) -> None:
    from convscope.atlas.channel_facts import layer_facts
    from convscope.atlas.examples import projection_method

    pending = [c for c in plan.channels if not _done(out, plan.name, c)]
    mine = pending[team.rank::team.world]
    if not mine:
        return
    model_size, batch = plan.model_size, plan.batch
    facts = layer_facts(result, plan.name, model.class_names) if result is not None else {}
    method = projection_method(result, model, plan.name) if result is not None else None
    began = time.perf_counter()
    bar = progress_bar(total=len(mine), desc=f"atlas {plan.name}", unit="channel", enabled=progress)
    for start in range(0, len(mine), batch):
        chunk = mine[start:start + batch]
        pictures = visualise_channels(fast, plan.name, chunk, recipe, model_size=model_size, progress=progress)
        top = bottom = None
        if result is not None:
            from convscope.atlas.examples import bottom_examples, top_examples

            kept = min(k, result.top(plan.name).filled().k)
            top = top_examples(result, model, plan.name, chunk, kept, method)
            bottom = bottom_examples(result, model, plan.name, chunk, kept, method)
        for row, channel in enumerate(chunk):
            _write_channel(out, plan.name, channel, row, pictures, top, bottom, facts.get(channel), method,
                           chain.get(plan.name, {}))
        bar.update(len(chunk))
    bar.close()
    seconds = time.perf_counter() - began
    log.debug(f"{plan.name}: {len(mine)} channels in {seconds:.1f} s ({seconds / len(mine):.2f} s a channel)")


def _write_channel(out: Path, layer: str, channel: int, row: int, pictures: Any, top: Any, bottom: Any,
                   facts: dict | None, method: str | None, chain: dict[str, Links]) -> None:
    """The channel's pictures, then its JSON (last: its presence says the channel is done)."""
    images: dict[str, Any] = {}

    def save(what: str, image: torch.Tensor) -> str:
        relative = layout.image_path(layer, channel, what)
        layout.write_png(out / relative, image)
        return relative

    images["vis"] = save("vis", pictures.positive[row])
    images["negative"] = save("negative", pictures.negative[row]) if pictures.negative is not None else None
    images["facets"] = [save(f"facet{i}", image) for i, image in enumerate(pictures.facets[row])]
    values = pictures.values[row].tolist()
    record: dict[str, Any] = {
        "layer": layer, "channel": channel,
        "stats": facts["stats"] if facts else {"active_fraction": None, "mean": None, "max": None, "dead": None},
        "top_classes": facts["top_classes"] if facts else [],
        "images": images,
        "drives": chain["next"].drives(channel) if "next" in chain else [],
        "driven_by": chain["previous"].driven_by(channel) if "previous" in chain else [],
        "values": {"vis": values[0], "negative": values[1] if pictures.negative is not None else None,
                   "facets": values[len(values) - len(pictures.facets[row]):]},
        "response": [round(v, 5) for v in pictures.responses[row].tolist()],
        "projection": method,
        "links": {"drives": chain["next"].method if "next" in chain else None,
                  "driven_by": chain["previous"].method if "previous" in chain else None},
    }
    for name, examples in (("top", top), ("bottom", bottom)):
        if examples is None:
            images[name], images[f"{name}_projections"] = [], []
            continue
        images[name] = [save(f"{name}{i}", patch) for i, patch in enumerate(examples.patches[row])]
        images[f"{name}_projections"] = [] if examples.projections is None else [
            save(f"{name}{i}_projection", tile) for i, tile in enumerate(examples.projections[row])]
        record[f"{name}_values"] = examples.values[row].tolist()
        record[f"{name}_pictures"] = examples.images[row].tolist()
    layout.write_json(layout.channel_file(out, layer, channel), record)


def _done(out: Path, layer: str, channel: int) -> bool:
    record = layout.read_json(layout.channel_file(out, layer, channel))
    return record is not None and record.get("layer") == layer and record.get("channel") == channel


def _finish_layer(out: Path, plan: LayerPlan, result: ScanResult | None) -> None:
    """layer.json, once every channel of the layer is done (whichever runs made them)."""
    count = plan.shape[0]
    read = [layout.read_json(layout.channel_file(out, plan.name, c)) for c in range(count)]
    records = [record for record in read if record is not None]
    if len(records) < count:
        return
    if result is not None:
        from convscope.atlas.channel_facts import channel_scores

        rows = channel_scores(result, plan.name).float().T
        ordered_by = "correlation of the channels' activations over the scanned pictures"
    else:
        rows = torch.tensor([record["response"] for record in records])
        ordered_by = "correlation of the channels' responses to each other's visualisations"
    dead = [c for c, record in enumerate(records) if record["stats"].get("dead")]
    known = [r["stats"] for r in records if r["stats"].get("active_fraction") is not None]
    stats: dict[str, Any] = {"dead": len(dead), "ordered_by": ordered_by,
                             "projection": records[0].get("projection"), "links": records[0].get("links")}
    if result is not None:
        pooling = {"mean": "mean", "max": "maximum"}.get(result.config.get("pooling", ""), "mean")
        stats["top"] = "the scanned pictures with the strongest unit, cut around it (the scan's top-k)"
        stats["bottom"] = (f"the scanned pictures with the lowest {pooling} of the channel over positions, cut "
                           "around its weakest unit (on a rectified layer many pictures tie at 0)")
    if known:
        stats |= {"active_fraction": sum(s["active_fraction"] for s in known) / len(known),
                  "mean": sum(s["mean"] for s in known) / len(known), "max": max(s["max"] for s in known)}
    layout.write_json(layout.layer_folder(out, plan.name) / "layer.json",
                      {"name": plan.name, "channels": count, "shape": list(plan.shape), "dead": dead,
                       "order": similarity_order(rows), "stats": stats})


def _update_atlas(out: Path) -> None:
    atlas = layout.read_json(out / layout.ATLAS)
    if atlas is None:
        return
    atlas["complete"] = all((layout.layer_folder(out, layer["name"]) / "layer.json").is_file()
                            for layer in atlas["layers"])
    layout.write_json(out / layout.ATLAS, atlas)


def _links(model: Model, plans: list[LayerPlan], out: Path, result: ScanResult | None,
           team: Workers) -> dict[str, dict[str, Links]]:
    """Links between consecutive chosen layers: computed once by process 0 into links.json, read by all."""
    pairs = list(zip(plans, plans[1:], strict=False))
    if team.main:
        pictures = None
        for source, target in pairs:
            path = layout.layer_folder(out, source.name) / "links.json"
            saved = layout.read_json(path)
            if saved is not None and saved.get("target") == target.name:
                continue
            if pictures is None:
                pictures = _link_pictures(model, result)
            found = links(model, source.name, target.name, pictures)
            layout.write_json(path, {"source": source.name, "target": target.name, "method": found.method,
                                     "strength": [[round(v, 6) for v in row] for row in found.strength.tolist()]})
    team.barrier()
    chain: dict[str, dict[str, Links]] = {}
    for source, target in pairs:
        saved = layout.read_json(layout.layer_folder(out, source.name) / "links.json") or {}
        found = Links(source.name, target.name, torch.tensor(saved["strength"]), saved["method"])
        chain.setdefault(source.name, {})["next"] = found
        chain.setdefault(target.name, {})["previous"] = found
    return chain


def _link_pictures(model: Model, result: ScanResult | None) -> torch.Tensor:
    """A few pictures for gradient links: scanned ones (spread over the set), else the bundled photos."""
    if result is not None:
        count = min(GRADIENT_PICTURES, result.count)
        indices = torch.linspace(0, result.count - 1, count).round().long().tolist()
        fitted = result.preprocess.fit([result.pictures.picture(i) for i in indices])
    else:
        from convscope.images import SAMPLES, load_sample

        fitted = model.preprocess.fit([load_sample(name) for name in SAMPLES[:GRADIENT_PICTURES]])
    return model.preprocess.normalize(fitted).to(model.device)


def _version() -> str:
    from convscope import __version__

    return __version__
