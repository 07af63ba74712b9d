"""How far the worker's current job has come, read from the library's own progress bars.

The library reports progress through :func:`convscope.progress.progress_bar` (occlusion's and Score-CAM's
batches, the synthesis loop's steps …). In the explorer's worker threads, that function is replaced by one that
keeps the bar (drawn into a string, not the terminal) so that ``/api/queue`` can say "12 of 27 batches".
Other threads get the library's bar unchanged.
"""

from __future__ import annotations

import io
import sys
import threading
from typing import Any

from tqdm.std import tqdm

from convscope import progress as library

THREAD_PREFIX = "convscope-explore-"
_original = library.progress_bar
_bars: dict[int, tqdm] = {}


def watched_progress_bar(iterable: Any = None, *, enabled: bool | None = True, **options: Any) -> tqdm:
    if not threading.current_thread().name.startswith(THREAD_PREFIX):
        return _original(iterable, enabled=enabled, **options)
    options.pop("delay", None)  # count from the first step
    options.update(file=io.StringIO(), mininterval=0, miniters=1, disable=False)
    bar = tqdm(iterable, **options)
    _bars[threading.get_ident()] = bar
    return bar


def install() -> None:
    """Route the progress bars of every loaded convscope module through :func:`watched_progress_bar`."""
    for name, module in list(sys.modules.items()):
        if name.startswith("convscope") and getattr(module, "progress_bar", None) is _original:
            module.progress_bar = watched_progress_bar


def forget(thread: int | None) -> None:
    """A new job starts on ``thread``: its earlier bars are over."""
    _bars.pop(thread, None)


def progress_of(thread: int | None) -> dict[str, Any] | None:
    """``{"what", "done", "total"}`` of the latest bar of ``thread``'s current job, or ``None``."""
    bar = _bars.get(thread)
    if bar is None:
        return None
    return {"what": bar.desc or "", "done": int(bar.n), "total": None if bar.total is None else int(bar.total)}
