"""Reading IDX files, the format of MNIST and Fashion-MNIST (plain or gzip-compressed).

http://yann.lecun.com/exdb/mnist/ — a big-endian header: two zero bytes, a type code
(0x08 = unsigned byte), the number of dimensions, then each dimension as a 32-bit integer.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np

UNSIGNED_BYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` is decompressed), read-only, cached by path, size and time (a file
    that changes is read again)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"IDX file {str(path)!r} does not exist")
    stat = path.stat()
    return _read_idx(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_idx(path: Path, size: int, mtime_ns: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read IDX file {str(path)!r}: {error} (is the download complete?)") from error
    array = parse_idx(data, str(path))
    array.flags.writeable = False
    return array


def parse_idx(data: bytes, source: str = "data") -> np.ndarray:
    """Decode the bytes of an unsigned-byte IDX file."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{source} is not an IDX file (it should start with two zero bytes)")
    if data[2] != UNSIGNED_BYTE:
        raise ValueError(f"{source} holds IDX type 0x{data[2]:02x}; only unsigned bytes (0x08) are supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"{source} has a truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(f"{source} should hold {expected} values for shape {shape} but holds "
                         f"{len(data) - header}: the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
