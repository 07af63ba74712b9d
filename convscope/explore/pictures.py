"""The pictures the explorer may show: bundled photos, files under the folders named on the command line, uploads.

A picture is addressed by an id: ``sample:NAME``, ``file:N/RELATIVE/PATH`` (under the N-th named folder) or
``upload:HASH``. Nothing outside the named folders is ever opened: paths are resolved (symlinks followed)
and must stay inside their folder.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from convscope.images import IMAGE_SUFFIXES, SAMPLES, load_image, load_image_bytes

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_LISTED = 5000
MAX_UPLOADS = 64


@dataclass(frozen=True)
class Loaded:
    """A picture ``[3,H,W]`` in [0, 1] with its id, display name and content hash (for the cache)."""

    id: str
    name: str
    pixels: Tensor
    digest: str


def digest_of(pixels: Tensor) -> str:
    data = pixels.contiguous().numpy().tobytes()
    return hashlib.sha1(data + str(tuple(pixels.shape)).encode()).hexdigest()[:20]


class PictureStore:
    """Resolves picture ids to pixels, safely; remembers uploads and recently used pictures."""

    def __init__(self, folders: list[Path], files: list[Path] | None = None) -> None:
        self.roots: list[Path] = []
        self.only: list[set[Path] | None] = []  # per root: the files named alone, or None (the whole folder)
        for folder in folders:
            if not folder.is_dir():
                raise ValueError(f"{str(folder)!r} is not a folder of pictures")
            self.roots.append(folder.resolve())
            self.only.append(None)
        for file in files or []:
            if not file.is_file():
                raise ValueError(f"{str(file)!r} is not a file")
            parent, resolved = file.resolve().parent, file.resolve()
            if parent in self.roots and self.only[self.roots.index(parent)] is None:
                continue
            if parent not in self.roots:
                self.roots.append(parent)
                self.only.append(set())
            self.only[self.roots.index(parent)].add(resolved)
        self._uploads: OrderedDict[str, Loaded] = OrderedDict()
        self._recent: OrderedDict[str, Loaded] = OrderedDict()

    def listing(self) -> list[dict[str, str]]:
        """Every picture a user can pick: the bundled photos, then the named folders' images, then uploads."""
        found = [{"id": f"sample:{name}", "name": name, "source": "bundled"} for name in SAMPLES]
        for n, (root, only) in enumerate(zip(self.roots, self.only, strict=True)):
            paths = sorted(only) if only is not None else sorted(
                p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and _inside(p, root))
            for path in paths[:MAX_LISTED]:
                relative = path.relative_to(root).as_posix()
                found.append({"id": f"file:{n}/{relative}", "name": relative, "source": str(root)})
        found += [{"id": up.id, "name": up.name, "source": "upload"} for up in self._uploads.values()]
        return found

    def load(self, picture_id: str) -> Loaded:
        """The picture with this id, or a ``ValueError`` saying why it cannot be read."""
        if not isinstance(picture_id, str) or not picture_id or len(picture_id) > 1024 or "\x00" in picture_id:
            raise ValueError("a picture id is sample:NAME, file:N/PATH or upload:HASH")
        if picture_id in self._recent:
            self._recent.move_to_end(picture_id)
            return self._recent[picture_id]
        kind, _, rest = picture_id.partition(":")
        if kind == "sample":
            if rest not in SAMPLES:
                raise ValueError(f"unknown bundled photo {rest!r}; the photos are " + ", ".join(SAMPLES))
            pixels = load_image(f"sample:{rest}")
            name = rest
        elif kind == "file":
            path = self.resolve(rest)
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise ValueError(f"{rest!r} is {size / 2**20:.1f} MB, more than the {MAX_BYTES // 2**20} MB allowed")
            pixels = load_image_bytes(path.read_bytes(), path.name, max_pixels=MAX_PIXELS)
            name = path.name
        elif kind == "upload":
            if rest not in self._uploads:
                raise ValueError(f"no upload {rest!r} (uploads are kept while the server runs; send it again)")
            return self._uploads[rest]
        else:
            raise ValueError(f"unknown picture id {picture_id!r}: use sample:NAME, file:N/PATH or upload:HASH")
        loaded = Loaded(picture_id, name, pixels, digest_of(pixels))
        self._recent[picture_id] = loaded
        while len(self._recent) > 32:
            self._recent.popitem(last=False)
        return loaded

    def resolve(self, reference: str) -> Path:
        """``N/RELATIVE/PATH`` → a file inside the N-th folder, or a ``ValueError`` (traversal, symlink out …)."""
        number, _, relative = reference.partition("/")
        if not number.isdigit() or int(number) >= len(self.roots):
            raise ValueError(f"no folder number {number!r}; {len(self.roots)} folder(s) were named on the command line")
        root = self.roots[int(number)]
        parts = Path(relative).parts
        if not relative or Path(relative).is_absolute() or ".." in parts or relative.startswith("~"):
            raise ValueError(f"{relative!r} is not a path inside the folder (no '..', no absolute paths)")
        path = root / relative
        if not _inside(path, root):
            raise ValueError(f"{relative!r} leads outside the folder (a symbolic link?); only the named folders "
                             "are readable")
        only = self.only[int(number)]
        if not path.is_file() or (only is not None and path.resolve() not in only):
            raise ValueError(f"no picture {relative!r} in the folder")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{relative!r} is not a picture file ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return path

    def add_upload(self, data: bytes, filename: str) -> Loaded:
        """Decode an uploaded file (≤ 20 MB, ≤ 50 megapixels) and keep it under ``upload:HASH``."""
        if len(data) > MAX_BYTES:
            raise ValueError(f"the upload is {len(data) / 2**20:.1f} MB, more than the {MAX_BYTES // 2**20} MB allowed")
        if not data:
            raise ValueError("the upload is empty")
        name = Path(filename or "upload").name[:100] or "upload"
        pixels = load_image_bytes(data, name, max_pixels=MAX_PIXELS)
        digest = digest_of(pixels)
        loaded = Loaded(f"upload:{digest}", name, pixels, digest)
        self._uploads[digest] = loaded
        while len(self._uploads) > MAX_UPLOADS:
            self._uploads.popitem(last=False)
        return loaded


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):
        return False
