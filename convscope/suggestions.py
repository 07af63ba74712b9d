"""Error messages that point at the closest valid names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` candidates that look most like ``name`` (substring matches first)."""
    pool = list(candidates)
    lowered = name.lower()
    contains = [c for c in pool if lowered and lowered in c.lower()]
    similar = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    ordered = list(dict.fromkeys(similar + contains))
    return ordered[:n]


def unknown(kind: str, name: str, candidates: Iterable[str], hint: str = "") -> ValueError:
    """A ValueError saying ``name`` is not a known ``kind``, listing the nearest names."""
    near = closest(name, candidates)
    message = f"unknown {kind} {name!r}"
    if near:
        message += "; did you mean " + ", ".join(repr(c) for c in near) + "?"
    if hint:
        message += f" ({hint})"
    return ValueError(message)


def chosen_names(names: Sequence[str] | None, default: Sequence[str], known: Iterable[str], what: str,
                 listed: str) -> list[str]:
    """``names`` (or ``default`` when none are given), each checked to be one of ``known``: :func:`unknown`
    names the closest, then lists them all after ``listed``."""
    known = list(known)
    chosen = list(names) if names else list(default)
    for name in chosen:
        if name not in known:
            raise unknown(what, name, known, hint=f"{listed}: " + ", ".join(known))
    return chosen
