"""Small HTML for notebooks (``_repr_html_``): tables of results and pictures inlined as PNG."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence

from convscope.render.picture import Picture

TABLE_STYLE = "border-collapse:collapse;font-variant-numeric:tabular-nums;margin:0.3em 0"
CELL_STYLE = "padding:0.15em 0.6em;border-bottom:1px solid #ddd"


class Raw(str):
    """HTML that a table shows as it is (not escaped)."""


def cell(value: object, digits: int = 3) -> str:
    """One value as table text: floats to ``digits`` significant digits, NaN as a dash, the rest escaped
    (except :class:`Raw`)."""
    if isinstance(value, Raw):
        return value
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, tuple):
        return "×".join(str(v) for v in value)
    return html.escape(str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str = "",
          right: Sequence[int] = ()) -> str:
    """An HTML table; ``right`` lists the columns aligned right (numbers). Values are escaped by :func:`cell`."""
    def row(values: Sequence[object], tag: str) -> str:
        return "<tr>" + "".join(
            f"<{tag} style='{CELL_STYLE};text-align:{'right' if i in right else 'left'}'>"
            f"{v if tag == 'th' else cell(v)}</{tag}>" for i, v in enumerate(values)) + "</tr>"

    head = row([html.escape(h) for h in header], "th")
    body = "".join(row(values, "td") for values in rows)
    title = f"<caption style='text-align:left;font-weight:bold'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table style='{TABLE_STYLE}'>{title}<thead>{head}</thead><tbody>{body}</tbody></table>"


def image(picture: Picture, alt: str = "", *, width: int | None = None) -> str:
    """``picture`` as an ``<img>`` with the PNG inlined (a notebook keeps it with its outputs)."""
    data = base64.b64encode(picture._repr_png_()).decode("ascii")
    size = f" width='{width}'" if width else ""
    return f"<img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'{size} style='max-width:100%'>"


def bar(share: float, width: int = 80) -> Raw:
    """A horizontal bar for a share in [0, 1] (probabilities in tables)."""
    share = min(max(float(share), 0.0), 1.0)
    return Raw(f"<span style='display:inline-block;width:{width}px;height:0.7em;background:#eee'>"
            f"<span style='display:block;width:{share * width:.0f}px;height:100%;background:#3f51b5'></span></span>")
