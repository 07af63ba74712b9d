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


def canonical(name: str, known: Iterable[str]) -> str:
    """The one of ``known`` that ``name`` spells with other case, hyphens or underscores (``grad-cam``,
    ``Grad_CAM`` → ``grad_cam``); ``name`` itself when none does."""
    if not isinstance(name, str):
        return name
    folded = name.strip().lower().replace("-", "_")
    return next((k for k in known if k.lower().replace("-", "_") == folded), name)


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
    chosen = [canonical(name, known) for name in names] if names else list(default)
    for name in chosen:
        if name not in known:
            raise unknown(what, name, known, hint=f"{listed}: " + ", ".join(known))
    return chosen
