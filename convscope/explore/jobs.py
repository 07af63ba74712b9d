"""One worker thread for all work on the model (device work is serialised), with a cache of results.

Jobs have a priority (interactive ones — predictions, live occlusion — jump ahead of queued slow maps);
a job already queued or running under the same key is shared instead of being run twice. The web server
awaits the job's future, so it keeps answering other requests while the worker computes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from convscope.explore.progress import forget, progress_of, watch_this_thread

INTERACTIVE, CHEAP, SLOW = 0, 1, 2


@dataclass(order=True)
class Job:
    priority: int
    order: int
    key: str = field(compare=False)
    description: str = field(compare=False)
    work: Callable[[], Any] = field(compare=False)
    future: Future = field(compare=False, default_factory=Future)
    started: float | None = field(compare=False, default=None)
    group: str | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)


class Cancelled(Exception):
    """The job was dropped before it ran (a newer request replaced it)."""


class ResultCache:
    """A bounded in-memory cache: key → JSON-able result; least recently used entries leave first once there are
    more than ``entries`` or their size (strings and bytes, mostly PNG data URLs) passes ``max_bytes``."""

    def __init__(self, entries: int = 2048, max_bytes: int = 128 * 2**20) -> None:
        self.entries, self.max_bytes = entries, max_bytes
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.size = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]

    def put(self, key: str, value: Any) -> None:
        size = size_of(value)
        if size > self.max_bytes // 4:
            return  # one result may not push out most of the others
        with self._lock:
            self.size += size - self._sizes.get(key, 0)
            self._items[key], self._sizes[key] = value, size
            self._items.move_to_end(key)
            while len(self._items) > self.entries or self.size > self.max_bytes:
                old, _ = self._items.popitem(last=False)
                self.size -= self._sizes.pop(old)

    def __len__(self) -> int:
        return len(self._items)


def size_of(value: Any) -> int:
    """About how many bytes a JSON-able result holds (its strings and bytes; 16 for anything else)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(size_of(k) + size_of(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(size_of(v) for v in value) + 16
    return 16


def cache_key(*parts: Any) -> str:
    """A stable key from the parts (model fingerprint, picture hash, method, target, settings …)."""
    return json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))


class Worker:
    """Runs jobs one at a time on a background thread, most urgent first."""

    def __init__(self, cache: ResultCache, name: str = "model") -> None:
        self.cache, self.name = cache, name
        self._queue: queue.PriorityQueue[Job] = queue.PriorityQueue()
        self._pending: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._order = itertools.count()
        self.running: Job | None = None
        self.done = 0
        self._thread = threading.Thread(target=self._loop, name=f"convscope-explore-{name}", daemon=True)
        self._thread.start()

    def submit(self, key: str, work: Callable[[], Any], *, priority: int = CHEAP, description: str = "",
               group: str | None = None) -> Future:
        """The future of ``work``'s result; identical queued jobs are shared. ``group`` lets :meth:`cancel` drop it."""
        with self._lock:
            if key in self._pending:
                return self._pending[key].future
            job = Job(priority, next(self._order), key, description or key, work, group=group)
            self._pending[key] = job
        self._queue.put(job)
        return job.future

    async def run(self, key: str, work: Callable[[], Any], *, priority: int = CHEAP, description: str = "",
                  group: str | None = None) -> tuple[Any, bool]:
        """``(result, cached)``: from the cache, or computed on the worker while the server keeps answering."""
        found = self.cache.get(key)
        if found is not None:
            return found, True
        future = self.submit(key, work, priority=priority, description=description, group=group)
        return await asyncio.wrap_future(future), False

    def cancel(self, group: str) -> int:
        """Drop the queued (not yet running) jobs of ``group``; how many were dropped."""
        with self._lock:
            dropped = [job for job in self._pending.values() if job.group == group and job is not self.running]
            for job in dropped:
                job.cancelled = True
                del self._pending[job.key]
        for job in dropped:
            job.future.set_exception(Cancelled(f"{job.description} was cancelled: a newer request replaced it"))
        return len(dropped)

    def status(self) -> dict[str, Any]:
        running = self.running
        with self._lock:
            waiting = [job.description for job in sorted(self._pending.values()) if job is not running]
        return {"running": None if running is None else {
                    "what": running.description,
                    "seconds": round(time.monotonic() - (running.started or time.monotonic()), 1),
                    "progress": progress_of(self._thread.ident)},
                "waiting": waiting, "done": self.done, "cached": len(self.cache), "cache_hits": self.cache.hits}

    def _loop(self) -> None:
        watch_this_thread()  # the library's progress bars on this thread report to /api/queue
        while True:
            job = self._queue.get()
            if job.cancelled:
                continue
            forget(self._thread.ident)
            with self._lock:
                self.running, job.started = job, time.monotonic()
            try:
                result = job.work()
            except BaseException as error:  # the error goes to whoever waits for this job
                job.future.set_exception(error)
            else:
                self.cache.put(job.key, result)
                job.future.set_result(result)
            finally:
                with self._lock:
                    self._pending.pop(job.key, None)
                self.running = None
                self.done += 1
