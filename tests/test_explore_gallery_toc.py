"""The gallery page's table of contents: every section and figure has an anchor, every link finds one."""

from __future__ import annotations

from html.parser import HTMLParser

import torch

from convscope.render.gallery import Gallery, anchor
from convscope.render.picture import Picture


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if "id" in values:
            self.ids.append(values["id"])
        if tag == "a" and values.get("href", "").startswith("#"):
            self.links.append(values["href"][1:])
        self._in_h2 = tag == "h2" or self._in_h2

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2 and data.strip() and "contents" not in data:
            self.headings.append(data.strip())


def test_contents_link_to_unique_anchors(tmp_path) -> None:
    gallery = Gallery(tmp_path, title="g")
    tile = Picture(torch.zeros(3, 4, 4))
    gallery.add("Weights & activations", "filters.png", tile, "First-layer filters")
    gallery.add("Attribution", "a/filters.png", tile, "Same stem, other folder")
    gallery.add("Weights & activations", "top.png", tile, "A file named like the top anchor")
    page = Anchors()
    page.feed((tmp_path / "index.html").read_text())
    assert len(page.ids) == len(set(page.ids)) == 1 + 2 + 3  # title, sections, figures
    assert set(page.links) <= set(page.ids)
    assert {"weights-activations", "attribution", "filters", "filters-2", "top-2"} <= set(page.ids)
    assert page.links.count("top") == 2  # one "back to contents" per section
    assert page.headings == ["Weights & activations", "Attribution"]


def test_a_figure_links_to_what_its_section_wrote(tmp_path) -> None:
    gallery = Gallery(tmp_path, title="g")
    gallery.add("Atlas", "atlas.png", Picture(torch.zeros(3, 4, 4)), "An atlas", "Its pages:",
                link=("atlas/index.html", "atlas/<index>"))
    page = (tmp_path / "index.html").read_text()
    assert "Its pages: <a href='atlas/index.html'>atlas/&lt;index&gt;</a></figcaption>" in page


def test_anchor_names() -> None:
    used: set[str] = set()
    assert anchor("Feature space: t-SNE", used) == "feature-space-t-sne"
    assert anchor("Feature space: t-SNE", used) == "feature-space-t-sne-2"
    assert anchor("***", used) == "section"
