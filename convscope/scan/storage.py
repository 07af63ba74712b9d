"""The scan folder: ``scan.json`` (what was scanned, how, and whether it is complete), ``progress/`` while
running (one sub-folder per process: committed state plus feature parts) and ``layers/`` when done.

Every file is written to a temporary name and renamed, so an interruption at any moment
leaves the last committed state readable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = 1
CONFIG = "scan.json"
PROGRESS = "progress"
LAYERS = "layers"
INDEX = "index.pt"
# settings that must match for a folder to be resumed or reused
IDENTITY = ("format", "model", "layers", "k", "pooling", "batch_size", "dataset", "count")


def layer_file(folder: Path, layer: str) -> Path:
    return folder / LAYERS / f"{layer.replace('/', '_')}.pt"


def writer_folder(folder: Path, rank: int) -> Path:
    return folder / PROGRESS / f"rank{rank}"


def save_atomically(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(data, temporary)
    os.replace(temporary, path)


def write_config(folder: Path, config: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{CONFIG}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(config, indent=1), encoding="utf-8")
    os.replace(temporary, folder / CONFIG)


def read_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise ValueError(f"{str(folder)!r} holds no scan ({CONFIG} is missing): run `convscope scan DATA --layers "
                         "… --out FOLDER` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); remove the folder and scan again") from error


def load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def check_same_scan(existing: dict[str, Any], wanted: dict[str, Any], folder: Path) -> None:
    """ValueError naming the first setting in which the folder's scan differs from the one asked for."""
    for key in IDENTITY:
        if existing.get(key) != wanted.get(key):
            raise ValueError(f"{str(folder)!r} holds a different scan ({key}: {_short(existing.get(key))} there, "
                             f"{_short(wanted.get(key))} now); use another --out folder, or --overwrite to start "
                             "again")


def clear(folder: Path) -> None:
    """Remove what a scan wrote into ``folder`` (and nothing else)."""
    for name in (PROGRESS, LAYERS):
        shutil.rmtree(folder / name, ignore_errors=True)
    for name in (CONFIG, INDEX):
        (folder / name).unlink(missing_ok=True)


def fingerprint(net: nn.Module) -> str:
    """A SHA-1 of the parameter and buffer names, shapes and values (to tell models apart)."""
    digest = hashlib.sha1()
    for name, tensor in list(net.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) < 80 else text[:77] + "…"
