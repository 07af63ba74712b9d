"""Where an atlas keeps what: the contract between the atlas engine and the static site that shows it.

::

    OUT/atlas.json                              the model, the layers, the settings, the scan, complete or not
    OUT/layers/<layer>/layer.json               written once every channel of the layer is done
    OUT/layers/<layer>/links.json               the circuit links to the next chosen layer
    OUT/layers/<layer>/channels/<i>.json        one channel: statistics, top classes, pictures, links
    OUT/layers/<layer>/images/<i>_<what>.png    its pictures (paths in the JSON are relative to OUT)

Every file is written to a temporary name and renamed, so a run killed at any moment leaves only whole
files; a channel counts as done once its JSON exists (it is written after its pictures).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from convscope.render.picture import Picture
from convscope.scan.own_files import OwnFiles

FORMAT = "convscope-atlas/1"
ATLAS = "atlas.json"
LOCK = "atlas.lock"
LAYERS = "layers"
# what the engine writes; the site adds its pages (SITE_FILES) beside them
ENGINE_FILES = (f"{LAYERS}/*/layer.json", f"{LAYERS}/*/links.json", f"{LAYERS}/*/channels/*.json",
                f"{LAYERS}/*/images/*.png", f"{LAYERS}/*/images/*.webp")
SITE_FILES = ("index.html", "graph.json", "*.html", "*.js", "*.css", f"{LAYERS}/*/*.html",
              f"{LAYERS}/*/channels/*.html",
              "site/*", "site/*/*")
ATLAS_FILES = OwnFiles("atlas", ATLAS, files=ENGINE_FILES + SITE_FILES,
                       folders=(LAYERS, f"{LAYERS}/*", f"{LAYERS}/*/channels", f"{LAYERS}/*/images", "site",
                                "site/*"), always=(LOCK,))


def folder_name(layer: str) -> str:
    """The layer's folder name under ``layers/`` (its dotted name; a ``/`` becomes ``_``)."""
    return layer.replace("/", "_")


def layer_folder(out: Path, layer: str) -> Path:
    return out / LAYERS / folder_name(layer)


def channel_file(out: Path, layer: str, channel: int) -> Path:
    return layer_folder(out, layer) / "channels" / f"{channel}.json"


def image_path(layer: str, channel: int, what: str) -> str:
    """An image's path relative to the atlas folder, e.g. ``layers/blocks.4/images/17_top3.png``."""
    return f"{LAYERS}/{folder_name(layer)}/images/{channel}_{what}.png"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON, written to a temporary file and renamed to ``path``."""
    _write_bytes(path, json.dumps(data, indent=1).encode())


def write_png(path: Path, image: Tensor) -> None:
    """A picture ``[3,H,W]`` in [0, 1] as PNG, written to a temporary file and renamed to ``path``."""
    buffer = io.BytesIO()
    Picture(image).to_pil().save(buffer, format="PNG", optimize=True)
    _write_bytes(path, buffer.getvalue())


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing or damaged (a channel to be made again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:  # a full disk: no half-written file stays
        temporary.unlink(missing_ok=True)
        raise
