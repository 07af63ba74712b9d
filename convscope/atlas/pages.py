"""The atlas's pages as HTML text: the index with the model's graph, one page per layer, one per channel.

Modelled on OpenAI Microscope's pages (Schubert et al., https://openai.com/research/microscope): a layer is a
grid of its channels' feature visualisations; a channel shows its visualisation, a negative one, facets, the
dataset examples that excite it most and least, and its neighbours in the circuit. Everything from the atlas's
files is escaped; every link is relative to the page that holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
UNTRAINED = ("These pictures come from an <b>untrained model</b> (random weights): they show what the architecture "
             "does to noise, not features the model learned. Give the model's trained weights for a real atlas.")
UNFINISHED = ("This atlas is <b>not complete</b>: it is still being made or was interrupted; "
              "run the same <code>convscope atlas</code> command again to finish it.")
SELECTED = ("This atlas holds <b>chosen channels</b> only (it was made with <code>--channels</code>); the same "
            "<code>convscope atlas</code> command without <code>--channels</code> adds the others.")


def folder_name(layer: str) -> str:
    """The layer's folder under ``layers/``: its dotted name, a ``/`` written ``_`` (as the atlas's files are)."""
    return layer.replace("/", "_")


def fmt(value: Any) -> str:
    """A number for people: thousands separated, 3 significant digits; ``—`` when there is none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')}: {fmt(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(fmt(item) for item in value)
    return str(value)


def short(count: int | None) -> str:
    """``1234567`` → ``1.23 M``."""
    if count is None:
        return "—"
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return str(count)


def dead_count(layer: dict[str, Any]) -> str:
    """A layer's number of dead channels, or a dash when no scan measured them."""
    return str(len(layer["dead"])) if layer.get("dead_measured") else "—"


def e(value: Any) -> str:
    return escape(fmt(value) if not isinstance(value, str) else value)


class Site:
    """The pages of one atlas; ``image(path)`` is the atlas-relative path of an existing picture or ``None``."""

    def __init__(self, atlas: dict[str, Any], layers: list[dict[str, Any]], graph: dict[str, Any],
                 image: Callable[[object], str | None]) -> None:
        self.atlas, self.layers, self.graph, self.image = atlas, layers, graph, image
        self.by_name = {layer["name"]: layer for layer in layers}

    # links ---------------------------------------------------------------------------------------------------
    @staticmethod
    def layer_href(name: str) -> str:
        return f"layers/{quote(folder_name(name))}/index.html"

    @staticmethod
    def channel_href(name: str, channel: int) -> str:
        return f"layers/{quote(folder_name(name))}/channels/{int(channel)}.html"

    def picture(self, path: object, up: str, alt: str, lazy: bool = True, title: str = "") -> str:
        found = self.image(path)
        if found is None:
            return f'<div class="missing">{escape(alt)}: not computed yet</div>'
        loading = ' loading="lazy"' if lazy else ""
        hover = f' title="{escape(title)}"' if title else ""
        return f'<img src="{up}{quote(found)}" alt="{escape(alt)}"{loading}{hover}>'

    def vis_of(self, layer: dict[str, Any], channel: int) -> str | None:
        data = layer["found"].get(channel)
        return self.image((data.get("images") or {}).get("vis")) if data else None

    # frame ---------------------------------------------------------------------------------------------------
    def page(self, title: str, up: str, trail: list[tuple[str, str | None]], body: str, kind: str) -> str:
        crumbs = " <span>›</span> ".join(f'<a href="{up}{href}">{escape(text)}</a>' if href else escape(text)
                                         for text, href in trail)
        banners = ""
        if not self.atlas.get("trained", True):
            banners += f'<p class="banner untrained" id="untrained">{UNTRAINED}</p>'
        if not self.atlas.get("complete", False):
            if self.layers and all(layer["summary"] or layer.get("selection") for layer in self.layers):
                banners += f'<p class="banner selected" id="selected">{SELECTED}</p>'
            else:
                banners += f'<p class="banner unfinished" id="unfinished">{UNFINISHED}</p>'
        model = escape(str(self.atlas.get("model", "model")))
        return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f'<title>{escape(title)} · {model} atlas</title>\n<link rel="icon" href="data:,">\n'
                f'<link rel="stylesheet" href="{up}site/atlas.css">\n'
                f'<script src="{up}site/atlas.js" defer></script>\n'
                f'</head>\n<body class="{kind}">\n<header><a class="brand" href="{up}index.html">{model} '
                f'<span>atlas</span></a><nav>{crumbs}</nav></header>\n<main>\n{banners}{body}\n</main>\n'
                f'<footer>made by convscope {e(self.atlas.get("convscope", ""))}</footer>\n</body>\n</html>\n')

    # index ---------------------------------------------------------------------------------------------------
    def index_page(self) -> str:
        atlas = self.atlas
        size = "×".join(str(s) for s in atlas.get("input_size", []))
        scan = atlas.get("scan") or {}
        weights = atlas.get("weights") or ("the model's own" if atlas.get("trained", True)
                                           else "none (random initialisation)")
        facts = [("model", atlas.get("model")), ("weights", weights),
                 ("trained", atlas.get("trained")), ("model digest", str(atlas.get("model_digest", ""))[:16]),
                 ("input", size), ("parameters", self.graph.get("parameters")),
                 ("multiply-adds", short(self.graph.get("flops"))),
                 ("scan", scan.get("path") if scan else "none (no dataset examples)")]
        settings = atlas.get("settings") or {}
        rows = []
        for layer in self.layers:
            done, total = len(layer["found"]), layer["channels"]
            state = ("complete" if layer["summary"] else f"{done} chosen channels" if layer.get("selection")
                     else f"{done} of {total} channels done")
            rows.append(f'<tr data-layer="{escape(layer["name"])}"><td><a href="{self.layer_href(layer["name"])}">'
                        f'{escape(layer["name"])}</a></td><td>{"×".join(str(s) for s in layer.get("shape", []))}</td>'
                        f'<td>{total}</td><td>{dead_count(layer)}</td><td class="state">{state}</td></tr>')
        count = sum(len(layer["selection"]) if layer.get("selection") else layer["channels"] for layer in self.layers)
        some = "Chosen channels" if any(layer.get("selection") for layer in self.layers) else "Every channel"
        lead = (f'<p class="lead">{some} of {len(self.layers)} layer{"s" if len(self.layers) != 1 else ""} '
                f'({count:,} channels): pick a layer in the table or the graph for its channels, then a channel for '
                f'its pictures, dataset examples and neighbours.</p>')
        body = (f'<h1>{e(atlas.get("model"))}</h1>\n{lead}\n<div class="columns">\n<section class="summary">\n'
                f'<table class="facts">{"".join(f"<tr><th>{k}</th><td>{e(v)}</td></tr>" for k, v in facts)}</table>\n'
                f'<h2>Layers in this atlas</h2>\n<table class="layers" id="layers"><tr><th>layer</th><th>shape</th>'
                f'<th>channels</th><th>dead</th><th>state</th></tr>{"".join(rows)}</table>\n'
                + (f'<h2>Settings</h2>\n<table class="facts settings">'
                   f'{"".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in settings.items())}</table>\n'
                   if settings else "")
                + f'</section>\n<section class="graph-box">\n<h2>Graph</h2>\n{self.graph_html()}\n</section>\n</div>')
        return self.page("Atlas", "", [("atlas", None)], body, "index")

    def graph_html(self) -> str:
        """The layers top to bottom as boxes joined by arrows (Netron's layout); the atlas's layers link to their
        pages and show a few of their channels."""
        if self.graph.get("error"):
            return f'<p class="banner" id="graph-error">The graph could not be drawn: {escape(self.graph["error"])}</p>'
        names = list(self.by_name)
        nodes = []
        for node in self.graph.get("nodes", []):
            name = node["name"]
            inside = [n for n in names if n.startswith(name + ".")]
            seen = self.field_text(node.get("receptive_field"), short=True)
            shape = "×".join(str(s) for s in node.get("output_shape") or []) or "—"
            title = (f'<a href="{self.layer_href(name)}">{escape(name)}</a>' if name in self.by_name
                     else escape(name))
            extra = "".join(f'<a class="inner" href="{self.layer_href(n)}">{escape(n)}</a>' for n in inside)
            strip = self.strip(self.by_name[name]) if name in self.by_name else ""
            nodes.append(f'<li class="node{" in-atlas" if name in self.by_name else ""}" data-node="{escape(name)}">'
                         f'<div class="head"><span class="name">{title}</span><span class="kind">'
                         f'{escape(node.get("kind", ""))}'
                         + (f' of {escape(node["holds"])}' if node.get("holds") and node.get("kind") in CONTAINERS
                            else "") + '</span></div>'
                         f'<div class="numbers"><span title="output shape [C,H,W]">{shape}</span>'
                         f'<span title="parameters">{short(node.get("parameters"))} params</span>'
                         f'<span title="multiply-adds">{short(node.get("flops"))} MACs</span>'
                         f'<span title="receptive field size / stride, in input pixels">RF {seen}</span></div>'
                         f'{extra}{strip}</li>')
        size = "×".join(str(s) for s in self.graph.get("input_size", []))
        return (f'<ol class="graph" id="graph"><li class="node input"><div class="head"><span class="name">input'
                f'</span><span class="kind">{size}</span></div></li>{"".join(nodes)}</ol>\n'
                f'<p class="note">{escape(self.graph.get("counted", ""))} RF: receptive field size and stride in '
                f'input pixels (bounding box; it may reach into the padding).</p>')

    @staticmethod
    def field_text(field: dict[str, Any] | None, short: bool = False) -> str:
        """``'19×19 px, stride 4×4'`` (``short``: ``'19×19 px / 4×4'``), ``'whole input'`` or ``'—'``."""
        if not field:
            return "—"
        if field.get("whole_input"):
            return "whole input"
        size, stride = "×".join(map(str, field["size"])), "×".join(map(str, field["stride"]))
        return f"{size} px / {stride}" if short else f"{size} px, stride {stride}"

    def strip(self, layer: dict[str, Any], count: int = 8) -> str:
        shown = [c for c in layer["order"] if self.vis_of(layer, c)][:count]
        return ('<div class="strip">' + "".join(
            f'<a href="{self.channel_href(layer["name"], c)}"><img src="{quote(self.vis_of(layer, c) or "")}" '
            f'alt="channel {c}" loading="lazy"></a>' for c in shown) + "</div>") if shown else ""

    # layer ---------------------------------------------------------------------------------------------------
    def layer_page(self, layer: dict[str, Any]) -> str:
        name, total, done = layer["name"], layer["channels"], len(layer["found"])
        up = "../../"
        summary = layer["summary"]
        dead_text = f"{len(layer['dead'])} dead" if layer.get("dead_measured") else "dead ones unknown (no scan)"
        state = (f"{total} channels, {dead_text}" if summary else
                 f"a selection: {done} of {total} channels (chosen with <code>--channels</code>), "
                 f"{dead_text}, shown by channel number" if layer.get("selection") else
                 f"<b>not complete</b>: {done} of {total} channels computed so far, shown by channel number")
        stats = dict((summary or {}).get("stats") or {})
        ordered_by = stats.pop("ordered_by", None)
        node = next((n for n in self.graph.get("nodes", []) if n["name"] == name), None)
        if node is not None:
            stats = {**stats, "parameters": node.get("parameters"), "multiply-adds": short(node.get("flops")),
                     "receptive field": self.field_text(node.get("receptive_field"))}
        stats.pop("dead", None)  # said in the line above
        names = {"active_fraction": "mean active fraction", "mean": "mean activation", "max": "max activation"}
        table = ('<dl class="chips" id="layer-stats">' + "".join(
            f"<div><dt>{e(names.get(k, str(k).replace('_', ' ')))}</dt><dd>{e(v)}</dd></div>"
            for k, v in stats.items())
                 + "</dl>") if stats else ""
        cells = []
        for rank, channel in enumerate(layer["order"]):
            vis, dead = self.vis_of(layer, channel), channel in layer["dead"]
            label = f"{channel}" + (" dead" if dead else "")
            inner = (f'<img src="{up}{quote(vis)}" alt="channel {channel}" loading="lazy">' if vis
                     else '<span class="placeholder">not computed yet</span>')
            cls = "cell" + (" dead" if dead else "") + ("" if channel in layer["found"] else " not-computed")
            cells.append(f'<a class="{cls}" href="channels/{channel}.html" data-channel="{channel}" '
                         f'data-rank="{rank}">{inner}<span class="label">{label}</span></a>')
        shape = "×".join(str(s) for s in layer.get("shape", []))
        body = (f'<h1>{escape(name)} <span class="sub">{shape}</span></h1>\n<p class="lead" id="layer-state">{state}.'
                f'</p>\n{table}\n<div class="toolbar"><label>order <select id="order"><option value="rank">similar '
                f'channels together</option><option value="channel">channel number</option></select></label>'
                f'<label><input type="checkbox" id="hide-dead"> hide dead</label>'
                f'<span class="note">each picture: the channel\'s feature visualisation; red: dead channels'
                + (f"; similar: by {escape(str(ordered_by))}" if ordered_by else "") + '</span>'
                f'</div>\n<div class="grid" id="grid">{"".join(cells)}</div>')
        return self.page(name, up, [("atlas", "index.html"), (name, None)], body, "layer")

    # channel -------------------------------------------------------------------------------------------------
    def channel_page(self, layer: dict[str, Any], channel: int) -> str:
        name, up = layer["name"], "../../../"
        order = layer["order"]
        at = order.index(channel) if channel in order else None  # a channel left out of a selection has no neighbours
        before = order[at - 1] if at else None
        after = order[at + 1] if at is not None and at + 1 < len(order) else None
        step = "".join(f'<a rel="{rel}" href="{c}.html">{text.format(c)}</a>' for rel, c, text in
                       (("prev", before, "← channel {}"), ("next", after, "channel {} →")) if c is not None)
        step += '<span class="note">(← → keys; neighbours in the layer\'s order)</span>'
        trail = [("atlas", "index.html"), (name, self.layer_href(name)), (f"channel {channel}", None)]
        data = layer["found"].get(channel)
        if data is None:
            body = (f'<h1>{escape(name)} <span class="sub">channel {channel}</span></h1><nav class="steps">{step}</nav>'
                    f'<p class="lead missing-channel" id="not-computed">This channel is not computed yet.</p>')
            return self.page(f"{name} #{channel}", up, trail, body, "channel")
        images = data.get("images") or {}
        stats = data.get("stats") or {}
        dead = ' <span class="tag dead">dead</span>' if stats.get("dead") or channel in layer["dead"] else ""
        facets = images.get("facets") or []
        values = data.get("values") if isinstance(data.get("values"), dict) else {}
        reached = {key: f" (activation {fmt(values[key])})" if isinstance(values.get(key), (int, float)) else ""
                   for key in ("vis", "negative")}
        negative = ("" if "negative" in images and images["negative"] is None else  # not asked for
                    f'<figure>{self.picture(images.get("negative"), up, "negative visualisation", lazy=False)}'
                    f'<figcaption>negative: what inhibits it most{reached["negative"]}</figcaption></figure>')
        vis = (f'<section class="vis" id="visualisations"><h2>Feature visualisation</h2><div class="row">'
               f'<figure class="main">{self.picture(images.get("vis"), up, "feature visualisation", lazy=False)}'
               f'<figcaption>what excites it most{reached["vis"]}</figcaption></figure>{negative}'
               f'<figure><div class="facets" id="facets">'
               + "".join(self.picture(p, up, f"facet {n + 1}") for n, p in enumerate(facets))
               + f'</div><figcaption>{"facets: other things that excite it" if facets else "no facets"}'
                 f'</figcaption></figure></div></section>')
        examples = "".join(self.examples(data, kind, up) for kind in ("top", "bottom"))
        methods = data.get("links") if isinstance(data.get("links"), dict) else {}
        side = self.stats_html(stats) + self.classes_html(data.get("top_classes") or []) + "".join(
            self.neighbours(data.get(key) or [], title, key, up, methods.get(key)) for key, title in
            (("drives", "Drives (next layer)"), ("driven_by", "Driven by (earlier layer)")))
        body = (f'<h1>{escape(name)} <span class="sub">channel {channel}</span>{dead}</h1><nav class="steps">{step}'
                f'</nav>\n<div class="channel-columns"><div class="channel-main">{vis}{examples}</div>'
                f'<aside class="channel-side">{side}</aside></div>')
        return self.page(f"{name} #{channel}", up, trail, body, "channel")

    def examples(self, data: dict[str, Any], kind: str, up: str) -> str:
        images = data.get("images") or {}
        patches, projections = images.get(kind) or [], images.get(f"{kind}_projections") or []
        found = data.get(f"{kind}_values")
        values = found if isinstance(found, list) else []
        method = f"{data['projection']} " if isinstance(data.get("projection"), str) else ""
        title = "Dataset examples that excite it most" if kind == "top" else "Dataset examples that excite it least"
        def value(n: int) -> str:
            return f"activation {fmt(values[n])}" if n < len(values) and isinstance(values[n], (int, float)) else ""

        if not patches:
            return (f'<section class="examples" id="{kind}"><h2>{title}</h2><p class="note">none (the atlas was made '
                    f'without a scan)</p></section>')
        grid = "".join(f'<figure>{self.picture(p, up, f"{kind} patch {n + 1}", title=value(n))}</figure>'
                       for n, p in enumerate(patches))
        projected = "".join(f'<figure>{self.picture(p, up, f"projection {n + 1}")}</figure>'
                            for n, p in enumerate(projections))
        return (f'<section class="examples" id="{kind}"><h2>{title}</h2><div class="row"><div><div class="patches">'
                f'{grid}</div><p class="note">the receptive field of the unit, in the scan\'s pictures</p></div>'
                + (f'<div><div class="patches projections">{projected}</div><p class="note">what in each patch drives '
                   f'it (its {escape(method)}projection to the input)</p></div>' if projections else "")
                + "</div></section>")

    @staticmethod
    def stats_html(stats: dict[str, Any]) -> str:
        names = {"active_fraction": "active fraction", "mean": "mean activation", "max": "max activation",
                 "dead": "dead"}
        rows = "".join(f"<tr><th>{escape(names.get(k, k.replace('_', ' ')))}</th><td>{e(v)}</td></tr>"
                       for k, v in stats.items())
        return f'<section id="stats"><h2>Statistics</h2><table class="facts">{rows}</table></section>'

    @staticmethod
    def classes_html(classes: list[dict[str, Any]]) -> str:
        if not classes:
            return '<section id="classes"><h2>Top classes</h2><p class="note">none (no scan)</p></section>'
        means = [m for m in (c.get("mean") for c in classes) if isinstance(m, (int, float))]
        low = min([0.0, *means])  # bars from the lowest shown (or 0) to the highest: longest first, when negative too
        span = max(means) - low if means and max(means) > low else 1.0
        rows = "".join(
            f'<li><span class="bar" style="width:{100 * (c["mean"] - low) / span:.0f}%"></span>'
            f'<span class="text">{e(c.get("class"))}</span><span class="value">{e(c.get("mean"))}</span></li>'
            if isinstance(c.get("mean"), (int, float)) else f'<li><span class="text">{e(c.get("class"))}</span></li>'
            for c in classes)
        return (f'<section id="classes"><h2>Top classes</h2><ol class="classes">{rows}</ol><p class="note">mean '
                f'activation over the scan\'s pictures of each class</p></section>')

    def neighbours(self, links: list[dict[str, Any]], title: str, key: str, up: str, method: object = None) -> str:
        items = []
        for link in links:
            name, channel = str(link.get("layer")), link.get("channel")
            text = f'{escape(name)} #{e(channel)} <span class="value">{e(link.get("strength"))}</span>'
            layer = self.by_name.get(name)
            if layer is not None and isinstance(channel, int) and 0 <= channel < layer["channels"]:
                vis = self.vis_of(layer, channel)
                thumb = (f'<img src="{up}{quote(vis)}" alt="" loading="lazy">' if vis
                         else '<span class="thumb-missing" title="not computed yet"></span>')
                items.append(f'<li><a href="{up}{self.channel_href(name, channel)}">{thumb}{text}</a></li>')
            else:
                items.append(f'<li title="this layer is not in the atlas">{text}</li>')
        listed = f'<ul class="links">{"".join(items)}</ul>' if items else '<p class="note">none</p>'
        note = f'<p class="note">strength by {escape(method)}</p>' if isinstance(method, str) and items else ""
        return f'<section id="{key.replace("_", "-")}"><h2>{title}</h2>{listed}{note}</section>'
