"""A Griffe extension for the API reference: reST roles in convscope's docstrings (``:func:`explain```,
``:class:`~convscope.scan.Scan```, ``:meth:`run```, …) become links to the named object's entry.

Each name is resolved in the scope of the object whose docstring holds it (its members, its imports, then its
parents'), as Python would read the name there. A name that resolves to nothing documented stays plain code, never
a literal ``:func:``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|mod|obj|exc|const):`(?P<tilde>~?)(?P<name>[\w.]+)(?:\(\))?`")


def resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` read in ``obj``'s scope (``Scan.run`` resolves ``Scan`` first), or None."""
    if name.startswith("convscope."):
        return name
    head, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return None


def linked(obj: griffe.Object, text: str) -> str:
    """``text`` with each role replaced by an optional cross-reference (plain code where nothing is found)."""

    def one(match: re.Match[str]) -> str:
        name = match["name"]
        shown = name.rsplit(".", 1)[-1] if match["tilde"] else name
        code = f"<code>{html.escape(shown)}</code>"
        path = resolve(obj, name)
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>' if path else code

    return ROLE.sub(one, text)


def _walk(obj: griffe.Object, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    if obj.docstring is not None and ":" in obj.docstring.value:
        obj.docstring.value = linked(obj, obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member, seen)  # type: ignore[arg-type]


class SphinxRoles(griffe.Extension):
    """Turn reST roles into cross-references once the whole package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())

