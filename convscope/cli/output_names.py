"""Names of the files the commands write: readable, and different whenever the result can differ.

A name reads ``COMMAND_PICTURE_WHAT_DIGEST.EXT``: the readable parts say what the file shows (picture,
method, target, layer …); the six hex digits are a digest of everything that makes the result what it
is — each picture's full path and every setting of the command. Two runs that differ in anything write
different files (``a/x.png`` and ``b/x.png``, ``a b.png`` and ``a_b.png``, two targets, two step counts),
and only a rerun of the very same command writes the same name again, with the same result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from convscope.cli.common import slug

# options that change where or how a command runs, not what it makes
NOT_SETTINGS = frozenset({"out", "device", "verbosity", "run", "command", "action", "overwrite", "save"})
DIGEST_BYTES = 3


def output_name(*parts: object, identity: dict[str, object], ext: str = "png") -> str:
    """``part_part_…_digest.ext``: ``parts`` made file-name safe (empty ones left out), ``identity`` digested."""
    readable = "_".join(slug(str(part)) for part in parts if part is not None and str(part) != "")
    text = json.dumps(_plain(identity), sort_keys=True)
    digest = hashlib.blake2b(text.encode(), digest_size=DIGEST_BYTES).hexdigest()
    return f"{readable}_{digest}.{ext}"


def settings(args: argparse.Namespace, *, leave_out: Iterable[str] = ()) -> dict[str, object]:
    """The command's settings: its arguments but where and how it runs (``--out``, ``--device`` …) and
    ``leave_out`` (arguments named per picture instead)."""
    skipped = NOT_SETTINGS | set(leave_out)
    return {key: value for key, value in vars(args).items() if key not in skipped and not callable(value)}


def identity(args: argparse.Namespace, *, pictures: Iterable[str] = (), leave_out: Iterable[str] = ()
             ) -> dict[str, object]:
    """:func:`settings`, with the picture arguments named in ``pictures`` (one source or a list) by full path."""
    found = settings(args, leave_out=leave_out)
    for key in pictures:
        value = found.get(key)
        if isinstance(value, list | tuple):
            found[key] = [picture_source(item) for item in value]
        elif isinstance(value, str | Path):
            found[key] = picture_source(value)
    return found


def picture_source(source: str | Path) -> str:
    """What identifies a picture argument: ``sample:NAME`` as it is, a file by its full path."""
    text = str(source)
    return text if text.startswith("sample:") or text.startswith("#") else str(Path(text).resolve())


def _plain(value: object) -> object:
    """``value`` as JSON can hold it: paths made absolute, sequences as lists, other objects by name."""
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(item) for item in value), key=repr)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return type(value).__name__


def run_names(args: argparse.Namespace, command: str, *, pictures: Iterable[str] = ("data",)
              ) -> Callable[..., str]:
    """Names for the files of one run of a study command: ``name(ext, what=None)`` → ``COMMAND[_WHAT]_DIGEST.EXT``,
    one digest of the run's settings for all its files (so a table and its figure share it)."""
    made = identity(args, pictures=[key for key in pictures if hasattr(args, key)])

    def name(ext: str, what: str | None = None) -> str:
        return output_name(command, what, identity=made, ext=ext)

    return name


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return the path (for ``written``)."""
    path.write_text(text)
    return path
