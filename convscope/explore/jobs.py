"""Workers for the model's jobs: a priority queue each, shared and cancellable jobs, a cache of results.

Two lanes, each a thread with a priority queue, each with its own copy of the model (so that neither ever sees
the other's hooks): the *interactive* lane (predictions, live occlusion, the one- and two-pass maps, a channel)
and the *background* lane (maps of many passes, feature visualisations). Long jobs run in chunks — the
library's progress-bar steps (occlusion's and Score-CAM's batches, SmoothGrad's copies, optimisation steps) —
and between two chunks a background job pauses while the interactive lane has work, and stops when cancelled.

A job is shared by every request for the same key; each request holds a *claim* on it. A claim goes when its
client disconnects, or by :meth:`Worker.cancel` of its group (a page's view that changed); a job without claims is
dropped from the queue or, when running, stopped at its next chunk. The web server awaits the jobs' futures,
so it keeps answering other requests while a worker computes.
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
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from convscope.explore.progress import forget, progress_of, watch_this_thread

INTERACTIVE, CHEAP, SLOW = 0, 1, 2
DISCONNECT_POLL = 0.25  # seconds between two looks at whether a waiting client is still there


@dataclass(order=True)
class Job:
    priority: int
    order: int
    key: str = field(compare=False)
    description: str = field(compare=False)
    work: Callable[[], Any] = field(compare=False)
    future: Future = field(compare=False, default_factory=Future)
    started: float | None = field(compare=False, default=None)
    claims: list[str | None] = field(compare=False, default_factory=list)  # the group of each request for it
    cancelled: bool = field(compare=False, default=False)


class Cancelled(Exception):
    """The job was dropped or stopped: cancelled, replaced by a newer request, or its clients went away."""


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


def settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Give ``future`` its result or error, unless it has one already (a job cancelled as it finished)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def cache_key(*parts: Any) -> str:
    """A stable key from the parts (model fingerprint, picture hash, method, target, settings …)."""
    return json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))


class Worker:
    """Runs jobs one at a time on a background thread, most urgent first.

    ``yields_to``: another worker whose jobs go first — this one starts a job, and goes on to a job's next
    chunk, only while that one has nothing to do.
    """

    def __init__(self, cache: ResultCache, name: str = "model", *, yields_to: Worker | None = None) -> None:
        self.cache, self.name, self.yields_to = cache, name, yields_to
        self._queue: queue.PriorityQueue[Job] = queue.PriorityQueue()
        self._pending: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified whenever this worker may have become idle
        self._order = itertools.count()
        self.running: Job | None = None
        self.done = self.cancelled = 0
        self._thread = threading.Thread(target=self._loop, name=f"convscope-explore-{name}", daemon=True)
        self._thread.start()

    def submit(self, key: str, work: Callable[[], Any], *, priority: int = CHEAP, description: str = "",
               group: str | None = None) -> Future:
        """The future of ``work``'s result, with a claim of ``group`` on it; identical queued jobs are shared."""
        with self._lock:
            job = self._pending.get(key)
            if job is None:
                job = Job(priority, next(self._order), key, description or key, work)
                self._pending[key] = job
                self._queue.put(job)
            job.claims.append(group)
        return job.future

    async def run(self, key: str, work: Callable[[], Any], *, priority: int = CHEAP, description: str = "",
                  group: str | None = None, request: Any = None) -> tuple[Any, bool]:
        """``(result, cached)``: from the cache, or computed on the worker while the server keeps answering.

        With ``request`` (a Starlette request), a client that disconnects gives up its claim on the job.
        """
        found = self.cache.get(key)
        if found is not None:
            return found, True
        future = self.submit(key, work, priority=priority, description=description, group=group)
        waiting = asyncio.wrap_future(future)
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=None if request is None else DISCONNECT_POLL)
                if done:
                    return waiting.result(), False
                if await request.is_disconnected():
                    self.release(key, future, group)
                    raise Cancelled(f"{description or key}: the client went away")
        except (asyncio.CancelledError, Cancelled):  # the client went away, or the server dropped the request
            self.release(key, future, group)
            waiting.add_done_callback(lambda done: done.cancelled() or done.exception())  # nobody reads it now
            raise

    def release(self, key: str, future: Future, group: str | None) -> None:
        """One request for the job of ``future`` is no longer wanted; the job goes when none is left."""
        with self._lock:
            job = self._pending.get(key)
            if job is None or job.future is not future or group not in job.claims:
                return
            job.claims.remove(group)
            dropped = [] if job.claims else [job]
        self._drop(dropped, "its clients went away")

    def cancel(self, group: str | None = None) -> int:
        """Withdraw ``group``'s claims (every claim when ``None``), queued and running; how many jobs were dropped."""
        with self._lock:
            dropped = []
            for job in self._pending.values():
                job.claims = [c for c in job.claims if group is not None and c != group]
                if not job.claims:
                    dropped.append(job)
        return self._drop(dropped, "cancelled")

    def _drop(self, jobs: list[Job], why: str) -> int:
        with self._lock:
            for job in jobs:
                job.cancelled = True
                self._pending.pop(job.key, None)
                self.cancelled += 1
            self._idle.notify_all()
        for job in jobs:
            if job is not self.running:  # a running job stops at its next chunk and reports there
                settle(job.future, error=Cancelled(f"{job.description} was {why}"))
        return len(jobs)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def wait_until_idle(self, job: Job | None = None) -> None:
        """Block while this worker has work (returns early when ``job`` is cancelled meanwhile)."""
        with self._idle:
            while self._pending and not (job is not None and job.cancelled):
                self._idle.wait(0.5)

    def status(self) -> dict[str, Any]:
        running = self.running
        with self._lock:
            waiting = [job.description for job in sorted(self._pending.values()) if job is not running]
        return {"running": None if running is None else {
                    "what": running.description,
                    "seconds": round(time.monotonic() - (running.started or time.monotonic()), 1),
                    "progress": progress_of(self._thread.ident),
                    "paused": self.yields_to is not None and self.yields_to.busy()},
                "waiting": waiting, "done": self.done, "cancelled": self.cancelled, "cached": len(self.cache),
                "cache_hits": self.cache.hits}

    def _checkpoint(self) -> None:
        """Between two chunks of the running job: stop it when cancelled; pause while the other lane works."""
        job = self.running
        if job is None:
            return
        if self.yields_to is not None:
            self.yields_to.wait_until_idle(job)
        if job.cancelled:
            raise Cancelled(f"{job.description} was cancelled")

    def _loop(self) -> None:
        watch_this_thread(self._checkpoint)  # the library's progress bars on this thread report to /api/queue
        while True:
            job = self._queue.get()
            if self.yields_to is not None and self.yields_to.busy():
                self._queue.put(job)  # taken again, or a more urgent one, once the other lane is idle
                self.yields_to.wait_until_idle()
                continue
            with self._lock:
                if job.cancelled:
                    continue
                self.running, job.started = job, time.monotonic()
            forget(self._thread.ident)
            try:
                result = job.work()
            except BaseException as error:  # the error goes to whoever waits for this job
                settle(job.future, error=error)
            else:
                self.cache.put(job.key, result)
                settle(job.future, result)
            finally:
                with self._lock:
                    if self._pending.get(job.key) is job:
                        del self._pending[job.key]
                    self.running = None
                    self.done += 1
                    self._idle.notify_all()
