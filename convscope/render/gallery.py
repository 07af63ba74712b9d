"""A folder of pictures with an ``index.html`` that shows them with captions, by section."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path

from convscope.logs import get_logger
from convscope.render.picture import Picture

log = get_logger(__name__)


@dataclass
class Entry:
    section: str
    file: str
    title: str
    caption: str


@dataclass
class Gallery:
    """Collects pictures into ``folder``; :meth:`write_index` writes the page."""

    folder: Path
    title: str = "convscope gallery"
    intro: str = ""
    entries: list[Entry] = field(default_factory=list)
    _last: float = field(default_factory=time.perf_counter, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, section: str, file: str, picture: Picture, title: str, caption: str = "") -> Path:
        """Save ``picture`` as ``file`` under ``section`` and rewrite the index; logs the figure and its time."""
        path = picture.save(self.folder / file)
        self.entries.append(Entry(section, file, title, caption))
        self.write_index()
        now = time.perf_counter()
        log.info(f"  {title} → {file} ({now - self._last:.1f} s)")
        self._last = now
        return path

    def write_index(self) -> Path:
        sections: dict[str, list[Entry]] = {}
        for entry in self.entries:
            sections.setdefault(entry.section, []).append(entry)
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}"
                 "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}"
                 "figcaption{color:#444;max-width:60em}h2{border-bottom:1px solid #ccc}</style></head><body>",
                 f"<h1>{html.escape(self.title)}</h1><p>{html.escape(self.intro)}</p>"]
        for section, entries in sections.items():
            parts.append(f"<h2>{html.escape(section)}</h2>")
            for entry in entries:
                parts.append(f"<figure><img src='{html.escape(entry.file)}' alt='{html.escape(entry.title)}'>"
                             f"<figcaption><b>{html.escape(entry.title)}</b>. {html.escape(entry.caption)}"
                             "</figcaption></figure>")
        parts.append("</body></html>")
        index = self.folder / "index.html"
        index.write_text("\n".join(parts), encoding="utf-8")
        return index
