"""The atlas's static site (a placeholder page: the full site replaces this module)."""

from __future__ import annotations

import html
from pathlib import Path

from convscope.atlas.layout import ATLAS, LAYERS, _write_bytes, read_json
from convscope.models.model import Model


def write_site(out_dir: Path, model: Model, input_size: tuple[int, ...]) -> None:
    """Write ``index.html`` into the atlas folder ``out_dir``: the model and links to each layer's files."""
    atlas = read_json(Path(out_dir) / ATLAS) or {}
    items = "".join(f'<li><a href="{LAYERS}/{html.escape(layer["name"])}/layer.json">{html.escape(layer["name"])}'
                    f'</a> ({layer["channels"]} channels)</li>' for layer in atlas.get("layers", []))
    state = "complete" if atlas.get("complete") else "incomplete (run the same command again to finish it)"
    page = (f"<!doctype html><meta charset=utf-8><title>Atlas of {html.escape(model.name)}</title>"
            f"<h1>Atlas of {html.escape(model.name)}</h1><p>Input {list(input_size)}; {state}.</p><ul>{items}</ul>")
    _write_bytes(Path(out_dir) / "index.html", page.encode())
