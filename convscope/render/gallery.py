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
    link: tuple[str, str] | None = None  # (relative href, text) shown after the caption


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

    def add(self, section: str, file: str, picture: Picture, title: str, caption: str = "",
            link: tuple[str, str] | None = None) -> Path:
        """Save ``picture`` as ``file`` under ``section`` and rewrite the index; logs the figure and its time.

        ``link``: ``(href, text)`` of something else the section wrote (a page, relative to the folder), shown
        after the caption.
        """
        path = picture.save(self.folder / file)
        self.entries.append(Entry(section, file, title, caption, link))
        self.write_index()
        now = time.perf_counter()
        log.info(f"  {title} → {file} ({now - self._last:.1f} s)")
        self._last = now
        return path

    def write_index(self) -> Path:
        """The page: a table of contents (sections and their figures, each a link) above the sections."""
        sections: dict[str, list[Entry]] = {}
        for entry in self.entries:
            sections.setdefault(entry.section, []).append(entry)
        used: set[str] = {"top"}
        section_ids = {section: anchor(section, used) for section in sections}
        figure_ids = {id(entry): anchor(Path(entry.file).stem, used) for entry in self.entries}
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}"
                 "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}"
                 "figcaption{color:#444;max-width:60em}h2{border-bottom:1px solid #ccc}"
                 "nav.toc{background:#f6f7f9;padding:.6em 1.2em;border:1px solid #ddd}"
                 "nav.toc ul{margin:.2em 0 .6em;padding-left:1.2em}"
                 "nav.toc>ul{padding-left:0;list-style:none;columns:2 24em}"
                 "nav.toc li{break-inside:avoid}a.top{font-size:small;font-weight:normal;margin-left:.6em}"
                 "</style></head><body>",
                 f"<h1 id='top'>{html.escape(self.title)}</h1><p>{html.escape(self.intro)}</p>",
                 "<nav class='toc' aria-label='contents'><b>Contents</b><ul>"]
        for section, entries in sections.items():
            parts.append(f"<li><a href='#{section_ids[section]}'>{html.escape(section)}</a><ul>")
            parts.extend(f"<li><a href='#{figure_ids[id(e)]}'>{html.escape(e.title)}</a></li>" for e in entries)
            parts.append("</ul></li>")
        parts.append("</ul></nav>")
        for section, entries in sections.items():
            parts.append(f"<h2 id='{section_ids[section]}'>{html.escape(section)}"
                         "<a class='top' href='#top'>↑ contents</a></h2>")
            for entry in entries:
                parts.append(f"<figure id='{figure_ids[id(entry)]}'><img src='{html.escape(entry.file)}' "
                             f"alt='{html.escape(entry.title)}'><figcaption><a href='#{figure_ids[id(entry)]}'>"
                             f"<b>{html.escape(entry.title)}</b></a>. {html.escape(entry.caption)}"
                             f"{_link(entry.link)}</figcaption></figure>")
        parts.append("</body></html>")
        index = self.folder / "index.html"
        index.write_text("\n".join(parts), encoding="utf-8")
        return index


def _link(link: tuple[str, str] | None) -> str:
    if link is None:
        return ""
    href, text = link
    return f" <a href='{html.escape(href)}'>{html.escape(text)}</a>"


def anchor(text: str, used: set[str]) -> str:
    """A URL fragment from ``text`` (lower case, letters, digits and dashes), unique among ``used``."""
    base = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    base = "-".join(part for part in base.split("-") if part) or "section"
    name, n = base, 2
    while name in used:
        name, n = f"{base}-{n}", n + 1
    used.add(name)
    return name
