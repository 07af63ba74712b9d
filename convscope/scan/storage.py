"""The scan folder: ``scan.json`` (what was scanned, how, and whether it is complete), ``progress/`` while
running (one sub-folder per process: committed state plus feature parts), ``layers/`` when done, and
``scan.lock`` while a scan writes it.

Every file is written to a temporary name and renamed, so an interruption at any moment
leaves the last committed state readable. The ``.pt`` files hold no process id or time:
identical scans give byte-identical files. A file that cannot be read is reported as
damaged, with the way out (``--overwrite``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convscope.scan.lock import LOCK
from convscope.scan.own_files import OwnFiles

FORMAT = 1
CONFIG = "scan.json"
PROGRESS = "progress"
LAYERS = "layers"
INDEX = "index.pt"
# settings that must match for a folder to be resumed or reused
IDENTITY = ("format", "model", "layers", "k", "pooling", "batch_size", "dataset", "count")
# what a scan writes: nothing else in its folder is ever removed
SCAN_FILES = OwnFiles("scan", CONFIG, files=(INDEX, f"{LAYERS}/*.pt", f"{PROGRESS}/rank*/state.pt",
                                             f"{PROGRESS}/rank*/part_*.pt"),
                      folders=(LAYERS, PROGRESS, f"{PROGRESS}/rank*"), always=(LOCK,))


def layer_file(folder: Path, layer: str) -> Path:
    return folder / LAYERS / f"{layer.replace('/', '_')}.pt"


def writer_folder(folder: Path, rank: int) -> Path:
    return folder / PROGRESS / f"rank{rank}"


RECOVER = "`convscope scan … --overwrite` (Scan.run(overwrite=True)) starts the scan again"
STATE_KEYS = ("done", "parts", "layers")
CONFIG_KEYS = ("format", "layers", "k", "batch_size", "count")


def save_atomically(data: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename; serialised in memory so that no temporary name is inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(data, buffer)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(buffer.getvalue())
    os.replace(temporary, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to a temporary file, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path, keys: Iterable[str], *, missing: str, what: str, recover: str) -> dict[str, Any]:
    """A settings file read back; one-line ``ValueError`` s when it is ``missing`` or damaged."""
    if not path.is_file():
        raise ValueError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged (not valid JSON: {error}); {recover}") from error
    if not isinstance(data, dict) or any(key not in data for key in keys):
        raise ValueError(f"{path} is damaged (it lacks {what}); {recover}")
    return data


def write_config(folder: Path, config: dict[str, Any]) -> None:
    write_json(folder / CONFIG, config)


def read_config(folder: str | Path) -> dict[str, Any]:
    return read_json(Path(folder) / CONFIG, CONFIG_KEYS, what="the scan's settings", recover=RECOVER,
                     missing=f"{str(folder)!r} holds no scan ({CONFIG} is missing): run `convscope scan DATA "
                             "--layers … --out FOLDER` first")


def load(path: Path, *, mmap: bool = False, keys: Iterable[str] = (), recover: str = RECOVER) -> Any:
    """A scan file read back; a ``ValueError`` naming it as damaged when it cannot be read, is not a regular
    file (never opened: a pipe would block) or, with ``keys``, is not a dict holding them."""
    if os.path.lexists(path) and not stat.S_ISREG(os.stat(path).st_mode if os.path.exists(path) else 0):
        raise ValueError(f"{path} is damaged (not a regular file: a pipe, device, folder or broken link); {recover}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError as error:
        raise ValueError(f"{path} is missing from the scan folder; {recover}") from error
    except Exception as error:  # truncated, overwritten or not a torch file at all
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is damaged ({first}); {recover}") from error
    lacking = [key for key in keys if not isinstance(data, dict) or key not in data]
    if lacking:
        raise ValueError(f"{path} is damaged (it lacks {', '.join(lacking)}); {recover}")
    return data


def load_state(path: Path) -> dict[str, Any]:
    """One process's committed progress (``state.pt``), checked to hold what a resume needs."""
    state = load(path)
    if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
        raise ValueError(f"{path} is damaged (it lacks {', '.join(STATE_KEYS)}); {RECOVER}")
    return state


def has_progress(folder: Path) -> bool:
    """Whether any process has committed batches in ``folder``."""
    return any((folder / PROGRESS).glob("rank*/state.pt"))


def clean_orphans(folder: Path, complete: bool) -> None:
    """Remove what an interrupted writer left: its temporary files, parts no state counts, a finished scan's
    progress (only the scan's own files: anything else stays)."""
    if complete:
        remove_progress(folder)
    for temporary in SCAN_FILES.temporaries(folder):
        temporary.unlink(missing_ok=True)
    for writer in (folder / PROGRESS).glob("rank*"):
        state = writer / "state.pt"
        parts = int(load_state(state)["parts"]) if state.is_file() else 0
        for part in writer.glob("part_*.pt"):
            if not part.stem.removeprefix("part_").isdigit() or int(part.stem.removeprefix("part_")) >= parts:
                part.unlink(missing_ok=True)


def remove_progress(folder: Path) -> None:
    """Remove the scan's files under ``progress/``, then the folders left empty."""
    for relative in SCAN_FILES.owned(folder):
        if relative.parts[0] == PROGRESS:
            (folder / relative).unlink(missing_ok=True)
    for writer in sorted((folder / PROGRESS).glob("rank*")):
        _remove_if_empty(writer)
    _remove_if_empty(folder / PROGRESS)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # missing, or holding someone else's file
        pass


_ABSENT = object()


@dataclass(frozen=True)
class Difference:
    """Where two settings dictionaries first differ: a dotted ``key`` (``settings.steps``) and its two values."""

    key: str
    one: Any
    other: Any

    def said(self, one: str, other: str) -> str:
        """``key: value one, value other`` — e.g. ``said("there", "now")``."""
        return f"{self.key}: {_shown(self.one)} {one}, {_shown(self.other)} {other}"


def first_difference(one: dict[str, Any], other: dict[str, Any], keys: Iterable[str]) -> Difference | None:
    """The first of ``keys`` whose value differs between two settings dictionaries (within a dictionary value, its
    first differing entry), or None."""
    key = next((key for key in keys if one.get(key) != other.get(key)), None)
    if key is None:
        return None
    a, b = one.get(key), other.get(key)
    while isinstance(a, dict) and isinstance(b, dict):
        inner = next(k for k in dict.fromkeys([*a, *b]) if a.get(k, _ABSENT) != b.get(k, _ABSENT))
        key, a, b = f"{key}.{inner}", a.get(inner, _ABSENT), b.get(inner, _ABSENT)
    return Difference(key, a, b)


def check_same_scan(existing: dict[str, Any], wanted: dict[str, Any], folder: Path) -> None:
    """ValueError naming the first setting in which the folder's scan differs from the one asked for."""
    difference = first_difference(existing, wanted, IDENTITY)
    if difference is not None:
        raise ValueError(f"{str(folder)!r} holds a different scan ({difference.said('there', 'now')}); use another "
                         "--out folder, or --overwrite to start again")


def check_still_ours(folder: Path, config: dict[str, Any]) -> None:
    """Refuse to go on when the folder's settings are no longer those of the scan writing it (another scan took the
    folder, e.g. after its lock was removed by hand): saving now would mix two scans."""
    now = read_config(folder)
    difference = first_difference(now, config, IDENTITY)
    if difference is not None:
        raise ValueError(f"the settings in {folder / CONFIG} changed while this scan was writing "
                         f"({difference.said('now', 'in this scan')}): another scan took the folder; this one stops "
                         "so as not to mix their features")


def clear(folder: Path) -> None:
    """Remove what a scan wrote into ``folder`` (and nothing else; the lock stays with its holder)."""
    SCAN_FILES.clear(folder)


def fingerprint(net: nn.Module) -> str:
    """A SHA-1 of the parameter and buffer names, shapes and values (to tell models apart)."""
    digest = hashlib.sha1()
    for name, tensor in list(net.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    text = json.dumps(value)
    return text if len(text) < 80 else text[:77] + "…"
