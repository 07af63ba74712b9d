"""How far the worker's current job has come, read from the library's own progress bars.

The library reports progress through :func:`convscope.progress.progress_bar` (occlusion's and Score-CAM's
batches, the synthesis loop's steps …). A worker thread calls :func:`watch_this_thread`, after which its bars
are drawn into a string, not the terminal, and kept, so that ``/api/queue`` can say "12 of 27 batches".
Other threads get the library's bar unchanged.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tqdm.std import tqdm

from convscope.progress import watch_progress

_bars: dict[int | None, tqdm] = {}


def watch_this_thread(checkpoint: Callable[[], None] | None = None) -> None:
    """Keep the bars this thread makes from now on, for :func:`progress_of`; call ``checkpoint()`` before each
    of their steps (where a job may pause, or stop by raising)."""

    def kept_bar(iterable: Any = None, **options: Any) -> tqdm:
        options.pop("delay", None)  # count from the first step
        options.update(file=io.StringIO(), mininterval=0, miniters=1, disable=False)
        bar = Steps(iterable, **options)
        bar.checkpoint = checkpoint
        _bars[threading.get_ident()] = bar
        return bar

    watch_progress(kept_bar)


class Steps(tqdm):
    """A bar that calls its ``checkpoint`` before each step: the library's loops become cancellable chunks."""

    checkpoint: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            if self.checkpoint is not None:
                self.checkpoint()
            yield item

    def update(self, n: float | None = 1) -> bool | None:
        if self.checkpoint is not None:
            self.checkpoint()
        return super().update(n)


def forget(thread: int | None) -> None:
    """A new job starts on ``thread``: its earlier bars are over."""
    _bars.pop(thread, None)


def progress_of(thread: int | None) -> dict[str, Any] | None:
    """``{"what", "done", "total"}`` of the latest bar of ``thread``'s current job, or ``None``."""
    bar = _bars.get(thread)
    if bar is None:
        return None
    return {"what": bar.desc or "", "done": int(bar.n), "total": None if bar.total is None else int(bar.total)}
