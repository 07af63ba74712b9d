"""Freed tensor memory kept by the process for the next step instead of given back to the system.

glibc's ``malloc`` serves each block over 32 MB (and, after a free, trims the heap) straight from the kernel: a
loop whose activations are tens of MB then takes a page fault per 4 KB of every new tensor, every step — on
EfficientNet-Lite0 with 24 pictures of 128 px, a third of the CPU time of feature visualisation. Inside
:func:`kept_memory` such blocks come from the heap and stay there (``mallopt``: no ``mmap``, no trim), so the
second step reuses the first step's pages; on exit the settings go back to glibc's defaults and the heap is trimmed
(``malloc_trim``). Elsewhere than Linux with glibc it does nothing. Allocators such as jemalloc or tcmalloc
(``LD_PRELOAD``) keep memory the same way: https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html
"""

from __future__ import annotations

import ctypes
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}
KEPT = {M_TRIM_THRESHOLD: 2**31 - 1, M_MMAP_MAX: 0}

_lock = threading.Lock()
_depth = 0


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018 — both must exist
    except (OSError, AttributeError):
        return None
    return libc


def _set(libc: ctypes.CDLL, values: dict[int, int]) -> None:
    for parameter, value in values.items():
        libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value))


@contextmanager
def kept_memory() -> Iterator[None]:
    """For the duration, memory freed by tensors stays with the process (nested and threaded uses are counted:
    the defaults return when the last one ends)."""
    global _depth
    libc = _libc()
    if libc is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _set(libc, KEPT)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(libc, DEFAULTS)
                libc.malloc_trim(ctypes.c_size_t(0))
