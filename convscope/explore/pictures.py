"""The pictures the explorer may show: bundled photos, files under the folders named on the command line, uploads.

A picture is addressed by an id: ``sample:NAME``, ``file:N/RELATIVE/PATH`` (under the N-th named folder) or
``upload:HASH``. Nothing outside the named folders is ever opened: paths are resolved (symlinks followed)
and must stay inside their folder.

Memory is bounded whatever is sent: an upload is kept as its file's bytes (at most :data:`UPLOAD_BYTES` in all);
pictures are decoded one at a time (a 50-megapixel PNG takes 200 MB while it decodes) and shrunk while decoding
to a short side of at least twice the model's working size (the model sees a crop of that size anyway); the
decoded pictures are kept in a least-recently-used cache of at most :data:`DECODED_BYTES`. Decoding is slow
(seconds for 50 megapixels): the server calls :meth:`PictureStore.load` and :meth:`PictureStore.add_upload` off
its event loop.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from convscope.images import IMAGE_SUFFIXES, SAMPLES, load_image, load_image_bytes

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_LISTED = 5000
MAX_UPLOADS = 64
UPLOAD_BYTES = 256 * 2**20  # the uploaded files kept, in all
DECODED_BYTES = 256 * 2**20  # the decoded pictures kept, in all


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


def file_digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:20]


class Bounded(OrderedDict):
    """Least recently used entries leave first, once the values' sizes (``size_of``) add up to more than ``limit``
    or there are more than ``count`` of them."""

    def __init__(self, limit: int, size_of, count: int | None = None) -> None:
        super().__init__()
        self.limit, self.size_of, self.count, self.total = limit, size_of, count, 0

    def keep(self, key: str, value) -> None:
        if key in self:
            self.total -= self.size_of(self.pop(key))
        self[key] = value
        self.total += self.size_of(value)
        while len(self) > 1 and (self.total > self.limit or (self.count is not None and len(self) > self.count)):
            _, old = self.popitem(last=False)
            self.total -= self.size_of(old)

    def find(self, key: str):
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]


class PictureStore:
    """Resolves picture ids to pixels, safely; remembers uploads and recently used pictures."""

    def __init__(self, folders: list[Path], files: list[Path] | None = None, *, short_side: int = 512) -> None:
        self.short_side = short_side  # decode at most about this short side (see the module)
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
            named = self.only[self.roots.index(parent)]
            if named is not None:  # None: the whole folder is readable already
                named.add(resolved)
        self._uploads = Bounded(UPLOAD_BYTES, lambda kept: len(kept[1]), MAX_UPLOADS)  # digest → (name, bytes)
        self._decoded = Bounded(DECODED_BYTES, lambda kept: kept.pixels.numel() * kept.pixels.element_size())
        self._lock = threading.Lock()  # the caches; and one decoding at a time, which bounds its memory
        self.scanned: Callable[[int], tuple[str, Tensor]] | None = None  # scan:INDEX → (name, pixels), with a scan

    def listing(self) -> list[dict[str, str]]:
        """Every picture a user can pick: the bundled photos, then the named folders' images, then uploads."""
        found = [{"id": f"sample:{name}", "name": name, "source": "bundled"} for name in SAMPLES]
        for n, (root, only) in enumerate(zip(self.roots, self.only, strict=True)):
            paths = sorted(only) if only is not None else sorted(
                p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and _inside(p, root))
            for path in paths[:MAX_LISTED]:
                relative = path.relative_to(root).as_posix()
                found.append({"id": f"file:{n}/{relative}", "name": relative, "source": str(root)})
        with self._lock:
            found += [{"id": f"upload:{digest}", "name": name, "source": "upload"}
                      for digest, (name, _) in self._uploads.items()]
        return found

    def load(self, picture_id: str) -> Loaded:
        """The picture with this id, or a ``ValueError`` saying why it cannot be read."""
        if not isinstance(picture_id, str) or not picture_id or len(picture_id) > 1024 or "\x00" in picture_id:
            raise ValueError("a picture id is sample:NAME, file:N/PATH or upload:HASH")
        with self._lock:
            found = self._decoded.find(picture_id)
        if found is not None:
            return found
        kind, _, rest = picture_id.partition(":")
        if kind == "sample":
            if rest not in SAMPLES:
                raise ValueError(f"unknown bundled photo {rest!r}; the photos are " + ", ".join(SAMPLES))
            pixels = load_image(f"sample:{rest}")
            return self._keep(Loaded(picture_id, rest, pixels, digest_of(pixels)))
        if kind == "file":
            path = self.resolve(rest)
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise ValueError(f"{rest!r} is {size / 2**20:.1f} MB, more than the {MAX_BYTES // 2**20} MB allowed")
            return self._decode(picture_id, path.name, path.read_bytes())
        if kind == "upload":
            with self._lock:
                kept = self._uploads.find(rest)
            if kept is None:
                raise ValueError(f"no upload {rest!r} (uploads are kept while the server runs; send it again)")
            return self._decode(picture_id, *kept)
        if kind == "scan":
            if self.scanned is None:
                raise ValueError("no scan is open: scan:INDEX pictures need `convscope explore --scan FOLDER`")
            if not rest.isdigit():
                raise ValueError(f"scan:{rest} is not a picture of the scan: use scan:INDEX (0, 1, …)")
            name, pixels = self.scanned(int(rest))
            return self._keep(Loaded(picture_id, name, pixels, digest_of(pixels)))
        raise ValueError(f"unknown picture id {picture_id!r}: use sample:NAME, file:N/PATH or upload:HASH")

    def _decode(self, picture_id: str, name: str, data: bytes) -> Loaded:
        with self._lock:  # one decoding at a time
            try:
                pixels = load_image_bytes(data, name, max_pixels=MAX_PIXELS, short_side=self.short_side)
            finally:
                give_back_memory()
        return self._keep(Loaded(picture_id, name, pixels, file_digest(data)))

    def _keep(self, loaded: Loaded) -> Loaded:
        with self._lock:
            self._decoded.keep(loaded.id, loaded)
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
        """Check an uploaded file (≤ 20 MB, ≤ 50 megapixels) by decoding it, and keep its bytes as ``upload:HASH``."""
        if len(data) > MAX_BYTES:
            raise ValueError(f"the upload is {len(data) / 2**20:.1f} MB, more than the {MAX_BYTES // 2**20} MB allowed")
        if not data:
            raise ValueError("the upload is empty")
        name = Path(filename or "upload").name[:100] or "upload"
        digest = file_digest(data)
        loaded = self._decode(f"upload:{digest}", name, data)
        with self._lock:
            self._uploads.keep(digest, (name, bytes(data)))
        return loaded


def give_back_memory() -> None:
    """Return the freed memory of a large decoding to the system (glibc keeps it for the process otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):
        return False
