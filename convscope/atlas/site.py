"""The atlas as a static web site: plain HTML, one CSS and one small JS file next to the atlas's PNGs.

Every page is generated here from the atlas's JSON files (nothing is fetched by the browser, so the site works from
``file://`` as well as from any static host), links are relative, and each page is written to a temporary file and
renamed, so that a browser or a copy never sees half a page. :func:`write_site` is called after each layer and at
the end: a channel not computed yet says so, and the index counts what is done while ``complete`` is false.
Layout of the folder (the pages mirror the JSON files): ``index.html``, ``graph.json``,
``layers/<layer>/index.html`` and ``layers/<layer>/channels/<i>.html``, ``site/atlas.css``, ``site/atlas.js``
(``<layer>``: the layer's dotted name, a ``/`` in it written ``_``, as the atlas's own files are).
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from convscope.atlas import pages
from convscope.atlas.graph import model_graph
from convscope.atlas.layout import read_json
from convscope.atlas.pages import folder_name

FORMAT = "convscope-atlas/1"
STATIC = Path(__file__).parent / "static"
ASSETS = ("atlas.css", "atlas.js")


def read_atlas(folder: str | Path) -> dict[str, Any]:
    """The atlas's ``atlas.json``; a folder that holds none (or another format) is refused in one line."""
    path = Path(folder) / "atlas.json"
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = None
    if not isinstance(found, dict) or found.get("format") != FORMAT or not isinstance(found.get("layers"), list):
        raise ValueError(f"{str(folder)!r} is not a convscope atlas (it holds no atlas.json of format {FORMAT}); "
                         "give the --out folder of `convscope atlas`")
    for entry in found["layers"]:
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("channels"), int) and entry["channels"] >= 0):
            raise ValueError(f"{str(path)!r} is damaged: a layer without its name and channel count ({entry!r}); "
                             "run `convscope atlas` again with --overwrite")
    return found


def write_site(out_dir: Path, model: Any, input_size: Any) -> None:
    """(Re)write every page of the atlas in ``out_dir`` from its JSON files; ``model`` and ``input_size``
    (``[C,H,W]``; ``None``: the atlas's own) give the graph of the model, computed once per model and kept in
    ``graph.json``."""
    out = Path(out_dir)
    atlas = read_atlas(out)
    layers = [load_layer(out, entry) for entry in atlas["layers"]]
    graph = graph_of(out, atlas, model, atlas.get("input_size") if input_size is None else input_size)
    for name in ASSETS:
        write_if_changed(out / "site" / name, (STATIC / name).read_text(encoding="utf-8"))
    site = pages.Site(atlas, layers, graph, lambda path: image(out, path))
    for layer in layers:
        folder = out / "layers" / layer["folder"]
        write_if_changed(folder / "index.html", site.layer_page(layer))
        for channel in range(layer["channels"]):
            write_if_changed(folder / "channels" / f"{channel}.html", site.channel_page(layer, channel))
    write_if_changed(out / "index.html", site.index_page())


def load_layer(out: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """One layer of ``atlas.json`` with its ``layer.json`` (``None`` until the layer is complete) and the
    channel files found so far (damaged or missing ones are read as not computed); ``selection``: the channels
    shown when a run made with ``--channels`` made every channel it chose (else ``None``)."""
    name, channels = str(entry["name"]), int(entry["channels"])
    if folder_name(name) in ("", ".", "..") or "\\" in name:
        raise ValueError(f"the atlas names a layer {name!r} that cannot be a folder name")
    folder = out / "layers" / folder_name(name)
    summary = read_json(folder / "layer.json")
    found = {}
    for channel in range(channels):
        data = read_json(folder / "channels" / f"{channel}.json")
        if data is not None:
            found[channel] = data
    order = summary.get("order") if summary else None
    if not (isinstance(order, list) and sorted(order) == list(range(channels))):
        order = list(range(channels))
    chosen = entry.get("selected")
    selection = None  # a run made with --channels that made every channel it chose: those are shown, not the rest
    if summary is None and isinstance(chosen, list) and chosen and all(c in found for c in chosen):
        selection = order = sorted(found)
    dead = {c for c, data in found.items() if data.get("stats", {}).get("dead")}
    if summary and isinstance(summary.get("dead"), list):
        dead |= {int(c) for c in summary["dead"]}
    measured = any(data.get("stats", {}).get("dead") is not None for data in found.values())  # by a scan
    return {**entry, "name": name, "folder": folder_name(name), "channels": channels, "summary": summary,
            "found": found, "order": order, "dead": dead, "dead_measured": measured, "selection": selection}



def graph_of(out: Path, atlas: dict[str, Any], model: Any, input_size: Any) -> dict[str, Any]:
    """``graph.json`` when it was made for this model and these layers, else the graph computed and written."""
    names = [str(entry["name"]) for entry in atlas["layers"]]
    kept = read_json(out / "graph.json")
    if kept and kept.get("model_digest") == atlas.get("model_digest") and kept.get("layers") == names:
        return kept
    graph = {"model": atlas.get("model"), "model_digest": atlas.get("model_digest"), "layers": names}
    try:
        graph.update(model_graph(model, input_size, names))
    except (ValueError, TypeError, RuntimeError) as error:  # the pages are worth having without the graph
        return {**graph, "nodes": [], "error": f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"}
    write_if_changed(out / "graph.json", json.dumps(graph, indent=1))
    return graph


def image(out: Path, path: object) -> str | None:
    """``path`` (relative to the atlas) when it names a file inside it, else ``None`` (shown as missing)."""
    if not isinstance(path, str) or not path:
        return None
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or "\\" in path:
        return None
    return path if (out / relative).is_file() else None


def write_if_changed(path: Path, text: str) -> None:
    """``text`` in ``path``, written to a temporary file and renamed (whole or not at all); unchanged files are
    left alone."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: several may write the site
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
