"""Class names and looking a class up by name or index."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from convscope.suggestions import unknown


@functools.cache
def imagenet_descriptions() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class descriptions, e.g. ``'tabby, tabby cat'`` (shipped with timm)."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo().label_descriptions())


def imagenet_class_names() -> list[str]:
    """Short ImageNet names: the first synonym of each description (``'tabby'``)."""
    return [d.split(",")[0].strip() for d in imagenet_descriptions()]


def numbered_class_names(count: int) -> list[str]:
    return [f"class {i}" for i in range(count)]


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def class_index(name: str | int, class_names: Sequence[str], synonyms: Sequence[str] | None = None) -> int:
    """Index of a class given by index, digits or (case-insensitive) name or synonym."""
    count = len(class_names)
    if isinstance(name, int) or (isinstance(name, str) and name.strip().isdigit()):
        index = int(name)
        if not 0 <= index < count:
            raise ValueError(f"class index {index} is out of range: this model has {count} classes (0..{count - 1})")
        return index
    if not isinstance(name, str):
        raise TypeError(f"a class is an int index or a name, got {type(name).__name__}")
    wanted = _key(name)
    matches = [i for i, c in enumerate(class_names) if _key(c) == wanted]
    if not matches and synonyms is not None:
        matches = [i for i, d in enumerate(synonyms) if wanted in (_key(s) for s in d.split(","))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"{i} ({(synonyms or class_names)[i]})" for i in matches)
        raise ValueError(f"class name {name!r} is ambiguous: it names classes {listed}; pass the index instead")
    pool = list(class_names) + [s.strip() for d in (synonyms or []) for s in d.split(",")]
    raise unknown("class", name, pool, hint="give a class name, an index, or 'top' for the top prediction")
