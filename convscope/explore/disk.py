"""The explorer's disk cache: files written whole or not at all, and checked when read back.

A write goes to a temporary file in the same folder, then replaces the target in one step (``os.replace``), so
that a crash or a full disk never leaves a half-written file under the real name; a file that is damaged anyway
(truncated by hand, another program) is read as missing, and the result is computed again.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` in ``path``, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_png(path: Path, size: int | None = None) -> bytes | None:
    """The bytes of a complete PNG at ``path`` (``size``: its side), or ``None`` when missing or damaged."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG" or (size is not None and image.size != (size, size)):
                return None
            image.load()  # a truncated file fails here
        return data
    except (OSError, ValueError, SyntaxError, EOFError):
        return None


def read_json(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A JSON object holding ``keys`` at ``path``, or ``None`` when missing or damaged."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and all(key in found for key in keys) else None


def write_tensor(path: Path, tensor: torch.Tensor) -> None:
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    write_atomically(path, buffer.getvalue())


def read_tensor(path: Path, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """A tensor of ``shape`` and ``dtype`` saved at ``path``, or ``None`` when missing or damaged."""
    try:
        found = torch.load(path, weights_only=True)
    except Exception:  # a damaged zip or pickle raises many kinds of errors
        return None
    ok = isinstance(found, torch.Tensor) and tuple(found.shape) == shape and found.dtype == dtype
    return found if ok else None
