"""One writer at a time per folder: ``scan.lock`` (``explain.lock`` …) names the process that holds it (pid, host,
start time).

The lock file is created atomically with its content (a hard link of a finished temporary
file), so a second scan either gets the lock or reads who holds it. A lock left by a process
that died on this machine is taken over; one from another machine is reported.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCK = "scan.lock"
POLL_SECONDS = 1.0


class ScanBusy(ValueError):
    """The folder is being written by another scan."""


@contextmanager
def scan_lock(folder: Path, *, wait: bool = False, on_wait=None) -> Iterator[None]:
    """Hold ``folder/scan.lock`` for the duration; with ``wait``, wait for a running scan to end."""
    with folder_lock(folder, LOCK, "scanned", wait=wait, on_wait=on_wait, wait_hint="pass --wait (wait=True) to wait"):
        yield


@contextmanager
def folder_lock(folder: Path, name: str, doing: str, *, wait: bool = False, on_wait=None,
                wait_hint: str = "") -> Iterator[None]:
    """Hold ``folder/name`` for the duration; another holder raises :class:`ScanBusy` saying who it is (``doing``:
    what it does to the folder, e.g. 'scanned'), or with ``wait`` is waited for."""
    path = folder / name
    told = False
    while True:
        holder = _try_take(path)
        if holder is None:
            break
        if not wait:
            raise ScanBusy(f"{str(folder)!r} is being {doing} by another process ({describe(holder)}); wait for "
                           f"it to finish, {wait_hint + ', ' if wait_hint else ''}or remove {path} if that "
                           "process is gone")
        if not told and on_wait is not None:
            on_wait(f"waiting for the process writing {str(folder)!r} ({describe(holder)}) to finish")
            told = True
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        _release(path)


def describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started', 'at an unknown time')}")


def _try_take(path: Path) -> dict[str, Any] | None:
    """Take the lock and return None, or return what the lock file says about its holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    attempt = f"{os.getpid()}.{secrets.token_hex(6)}"  # one name per attempt: threads of a process contend too
    temporary = path.with_name(f".{path.name}.{attempt}.tmp")
    temporary.write_text(json.dumps(mine), encoding="utf-8")
    try:
        os.link(temporary, path)  # atomic: fails when the lock exists, and the lock is never seen half-written
        return None
    except FileExistsError:
        holder = _read(path)
        if _is_dead(holder):  # the holder died on this machine: take over (unless another process just did)
            stale = path.with_name(f".{path.name}.{attempt}.stale")
            try:
                os.replace(path, stale)
            except FileNotFoundError:
                return _try_take(path)
            if _read(stale) != holder:  # a live lock was taken by mistake: put it back, report its holder
                os.replace(stale, path)
                return _read(path)
            stale.unlink(missing_ok=True)
            return _try_take(path)
        return holder
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _is_dead(holder: dict[str, Any]) -> bool:
    """Whether the holder is known to be gone: a process of this machine that no longer runs."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _release(path: Path) -> None:
    if _read(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)
