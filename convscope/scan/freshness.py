"""Whether a finished scan still describes its pictures: file sizes and times first, content digests second.

A scan records the size and modification time of every file its pictures are read from, and a
digest of each picture as read. Reading the scan back (a rerun of the same ``scan``, ``top-patches``)
compares the files' sizes and times — cheap — and reads only the pictures whose files differ (or,
for pictures without files, every picture asked about) to compare their digests: a picture that
changed is refused rather than shown beside the features and positions of the old one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from convscope.data.pictures import PictureSet

if TYPE_CHECKING:
    from convscope.scan.result import ScanResult

DIGEST_SIZE = 16


def file_stats(pictures: PictureSet) -> dict[str, list[int]] | None:
    """``{path: [size, mtime_ns]}`` of every file the pictures are read from; ``None`` when the set cannot tell."""
    stats: dict[str, list[int]] = {}
    for index in range(len(pictures)):
        files = pictures.source_files(index)
        if files is None:
            return None
        for path in files:
            if str(path) not in stats:
                stats[str(path)] = _stat(path)
    return stats


def check_pictures(result: ScanResult, indices: Iterable[int] | None = None) -> None:
    """A one-line ``ValueError`` when a scanned picture (of ``indices``, default all) changed since the scan.

    Scans from before digests were recorded are not checked."""
    digests = result.digests
    if digests is None:
        return
    pictures = result.pictures
    chosen = range(len(pictures)) if indices is None else sorted({int(i) for i in indices})
    recorded = result.config.get("sources")
    suspects = list(chosen) if recorded is None else _suspects(pictures, chosen, recorded)
    changed = []
    for index in suspects:
        if not torch.equal(picture_digest(pictures.picture(index)), digests[index]):
            changed.append(index)
    if changed:
        first = changed[0]
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise ValueError(f"picture {first} ({pictures.name(first)}){more} changed since it was scanned into "
                         f"{str(result.folder)!r}: the scan's features and positions belong to the old picture; rerun "
                         "`convscope scan … --overwrite` (Scan.run(overwrite=True)) to scan the pictures as they are")


def picture_digest(picture: Tensor) -> Tensor:
    """16 bytes that change when a picture's content, size or type changes."""
    import hashlib

    data = picture.detach().cpu().contiguous()
    digest = hashlib.blake2b(f"{tuple(data.shape)}{data.dtype}".encode(), digest_size=DIGEST_SIZE)
    digest.update(data.numpy().tobytes() if data.numel() else b"")
    return torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8)


def _suspects(pictures: PictureSet, chosen: Iterable[int], recorded: dict[str, list[int]]) -> list[int]:
    """The pictures of ``chosen`` whose files differ in size or time from ``recorded`` (or that have no files)."""
    seen: dict[Path, bool] = {}
    suspects = []
    for index in chosen:
        files = pictures.source_files(index)
        if files is None:
            suspects.append(index)
            continue
        for path in files:
            if path not in seen:
                seen[path] = _stat(path) != recorded.get(str(path))
        if any(seen[path] for path in files):
            suspects.append(index)
    return suspects


def _stat(path: Path) -> list[int]:
    try:
        found = os.stat(path)
    except OSError:
        return [-1, -1]  # gone: differs from anything recorded
    return [found.st_size, found.st_mtime_ns]
