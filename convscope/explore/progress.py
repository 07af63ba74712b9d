"""How far the worker's current job has come, read from the library's own progress bars.

The library reports progress through :func:`convscope.progress.progress_bar` (occlusion's and Score-CAM's
batches, the synthesis loop's steps …). A worker thread calls :func:`watch_this_thread`, after which its bars
are drawn into a string, not the terminal, and kept, so that ``/api/queue`` can say "12 of 27 batches".
Other threads get the library's bar unchanged.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from tqdm.std import tqdm

from convscope.progress import watch_progress

_bars: dict[int, tqdm] = {}


def watch_this_thread() -> None:
    """Keep the bars this thread makes from now on, for :func:`progress_of`."""
    watch_progress(_kept_bar)


def _kept_bar(iterable: Any = None, **options: Any) -> tqdm:
    options.pop("delay", None)  # count from the first step
    options.update(file=io.StringIO(), mininterval=0, miniters=1, disable=False)
    bar = tqdm(iterable, **options)
    _bars[threading.get_ident()] = bar
    return bar


def forget(thread: int | None) -> None:
    """A new job starts on ``thread``: its earlier bars are over."""
    _bars.pop(thread, None)


def progress_of(thread: int | None) -> dict[str, Any] | None:
    """``{"what", "done", "total"}`` of the latest bar of ``thread``'s current job, or ``None``."""
    bar = _bars.get(thread)
    if bar is None:
        return None
    return {"what": bar.desc or "", "done": int(bar.n), "total": None if bar.total is None else int(bar.total)}
