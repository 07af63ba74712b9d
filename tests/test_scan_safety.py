"""Scans under concurrency, change and damage: one writer per folder, stale features refused, damaged files
named, nothing destroyed or left behind by a scan that cannot run, byte-identical results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
from scan_worker import LAYERS, assert_same_scan, pictures, small_model
from test_scan_run import Failing
from torch import nn

from convscope.data import TensorPictures
from convscope.scan import Scan, ScanResult, storage
from convscope.scan.lock import LOCK, ScanBusy, folder_lock


def _scan(folder, data=None, layers=("relu1", "fc"), **options):
    return Scan(small_model(), list(layers), k=3).run(data or pictures(count=9), folder, batch_size=4,
                                                        progress=False, **options)


def _interrupted(folder, data=None) -> None:
    """A scan stopped after its first two batches (pictures 0–7) were saved."""
    with pytest.raises(KeyboardInterrupt):
        Scan(small_model(), ["relu1", "fc"], k=3).run(Failing(data or pictures(count=9), fail_at=8), folder,
                                                      batch_size=4, progress=False, checkpoint_every=0)


def test_identical_scans_write_byte_identical_files(tmp_path, one_thread) -> None:
    worker = Path(__file__).with_name("scan_worker.py")  # another process: another process id
    subprocess.run([sys.executable, str(worker), str(tmp_path / "other")], check=True, timeout=300)
    Scan(small_model(), LAYERS, k=4).run(pictures(), tmp_path / "here", batch_size=3, progress=False)
    files = sorted(str(p.relative_to(tmp_path / "here")) for p in (tmp_path / "here").rglob("*.pt"))
    assert files == ["index.pt", "layers/fc.pt", "layers/relu1.pt", "layers/relu2.pt"]
    for name in files:
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "other" / name).read_bytes(), name
        with zipfile.ZipFile(tmp_path / "here" / name) as archive:
            assert {entry.split("/")[0] for entry in archive.namelist()} == {"archive"}


def _lock_held_by(folder, pid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                           "started": "2026-01-02 03:04:05"}))


def test_a_second_scan_says_who_holds_the_folder(tmp_path) -> None:
    _lock_held_by(tmp_path, os.getppid())  # a process that is alive
    with pytest.raises(ScanBusy, match=rf"pid {os.getppid()} on .*started 2026-01-02 03:04:05.*--wait"):
        _scan(tmp_path)
    assert not (tmp_path / storage.CONFIG).exists()  # the refused scan wrote nothing


def test_wait_waits_for_the_running_scan(tmp_path) -> None:
    _lock_held_by(tmp_path, os.getppid())
    release = threading.Timer(1.5, lambda: (tmp_path / LOCK).unlink())
    release.start()
    started = time.monotonic()
    result = _scan(tmp_path, wait=True)
    assert time.monotonic() - started >= 1.0 and result.count == 9
    assert not (tmp_path / LOCK).exists()  # released after the scan


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _lock_held_by(tmp_path, gone.pid)
    assert _scan(tmp_path).count == 9
    assert not (tmp_path / LOCK).exists()


def run_together(work, count: int) -> None:
    """``work()`` in ``count`` threads at once; returns when all have ended."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_two_concurrent_scans_one_wins_the_other_is_told(tmp_path) -> None:
    errors: list[BaseException] = []
    slow = Failing(pictures(count=9), fail_at=None)

    def scan() -> None:
        try:
            Scan(small_model(), ["relu1"], k=3).run(slow, tmp_path, batch_size=1, progress=False)
        except BaseException as error:  # noqa: BLE001 — the test says which it was
            errors.append(error)

    run_together(scan, 2)
    assert len(errors) <= 1  # at most one was refused (when the first had finished, the second reused it)
    assert all(isinstance(e, ScanBusy) and "being scanned by another process" in str(e) for e in errors), errors
    assert ScanResult.load(tmp_path).count == 9


def test_threads_of_one_process_contend_for_a_lock_without_tripping_over_each_other(tmp_path) -> None:
    # Each attempt writes its own temporary file: with one name per process, one thread's clean-up removed the
    # file another thread was about to link (FileNotFoundError instead of the lock or ScanBusy).
    unexpected: list[BaseException] = []
    start = threading.Barrier(6)

    def contend() -> None:
        start.wait()
        for _ in range(200):
            try:
                with folder_lock(tmp_path, LOCK, "scanned"):
                    pass
            except ScanBusy:
                pass
            except BaseException as error:  # noqa: BLE001 — anything else is the bug
                unexpected.append(error)

    run_together(contend, 6)
    assert unexpected == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no lock, no temporary file left


def test_resume_refuses_pictures_that_changed_since_they_were_scanned(tmp_path) -> None:
    data = pictures(count=9)
    _interrupted(tmp_path, data)
    changed = TensorPictures([p.clone() for p in data.items], data.labels(), data.class_names)
    changed.items[2] = changed.items[2].flip(-1)  # same count, same settings, other content in batch 0
    with pytest.raises(ValueError, match=r"pictures changed since they were scanned \(batches \[0\].*--overwrite"):
        _scan(tmp_path, changed)
    resumed = _scan(tmp_path, changed, overwrite=True)
    assert_same_scan(resumed, _scan(tmp_path / "fresh", changed), layers=["relu1", "fc"])


def test_an_unchanged_resume_is_accepted(tmp_path) -> None:
    data = pictures(count=9)
    _interrupted(tmp_path, data)
    assert_same_scan(_scan(tmp_path, data), _scan(tmp_path / "whole", data), layers=["relu1", "fc"])


def test_orphans_of_an_interrupted_cleanup_are_removed(tmp_path) -> None:
    _scan(tmp_path)
    rank = tmp_path / storage.PROGRESS / "rank0"  # as if the removal of progress/ had been cut short
    rank.mkdir(parents=True)
    (rank / "part_00000.pt").write_bytes(b"left over")
    (tmp_path / "layers" / ".relu1.pt.4242.tmp").write_bytes(b"half written")
    _scan(tmp_path)
    assert not (tmp_path / storage.PROGRESS).exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_damaged_files_are_named_with_the_way_out(tmp_path) -> None:
    _scan(tmp_path / "done")
    (tmp_path / "done" / "layers" / "relu1.pt").write_bytes(b"garbage")
    result = ScanResult.load(tmp_path / "done")
    with pytest.raises(ValueError, match=r"relu1\.pt is damaged.*--overwrite"):
        result.features("relu1")
    (tmp_path / "done" / "index.pt").write_bytes((tmp_path / "done" / "index.pt").read_bytes()[:50])
    with pytest.raises(ValueError, match=r"index\.pt is damaged.*--overwrite"):
        ScanResult.load(tmp_path / "done")
    (tmp_path / "done" / storage.CONFIG).write_text("{not json")
    with pytest.raises(ValueError, match=r"scan\.json is damaged.*--overwrite"):
        ScanResult.load(tmp_path / "done")
    assert _scan(tmp_path / "done", overwrite=True).count == 9  # --overwrite recovers

    _interrupted(tmp_path / "part")
    (tmp_path / "part" / storage.PROGRESS / "rank0" / "state.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"state\.pt is damaged.*--overwrite"):
        _scan(tmp_path / "part")
    _interrupted(tmp_path / "part2")
    torch.save({"done": [0]}, tmp_path / "part2" / storage.PROGRESS / "rank0" / "state.pt")
    with pytest.raises(ValueError, match=r"state\.pt is damaged \(it lacks"):
        _scan(tmp_path / "part2")
    _interrupted(tmp_path / "part3")
    (tmp_path / "part3" / storage.PROGRESS / "rank0" / "part_00000.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match=r"part_00000\.pt is damaged.*--overwrite"):
        _scan(tmp_path / "part3")
    assert _scan(tmp_path / "part3", overwrite=True).count == 9


def test_a_scan_that_cannot_run_leaves_nothing_and_blocks_nothing(tmp_path) -> None:
    broken = pictures(count=9)
    broken.items[0] = broken.items[0].clone()
    broken.items[0][0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        _scan(tmp_path / "new", broken)
    assert not (tmp_path / "new").exists()
    stub = tmp_path / "stub"  # an old scan that never saved a batch does not block another one
    stub.mkdir()
    storage.write_config(stub, {"format": storage.FORMAT, "layers": ["relu2"], "k": 3, "batch_size": 4,
                                "count": 9, "complete": False})
    assert _scan(stub).layers == ["relu1", "fc"]


def test_overwrite_destroys_nothing_until_the_new_scan_can_run(tmp_path) -> None:
    first = _scan(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    broken = pictures(count=9)
    broken.items[0] = broken.items[0] * 2 + 0.5  # not a picture in [0, 1]
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        _scan(tmp_path, broken, overwrite=True)
    unused = small_model()
    unused.net.spare = nn.ReLU()  # registered, never called by forward
    with pytest.raises(ValueError, match="did not run"):
        Scan(unused, ["spare"], k=3).run(pictures(count=9), tmp_path, batch_size=4, progress=False, overwrite=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert_same_scan(ScanResult.load(tmp_path), first, layers=["relu1", "fc"])


def test_layers_are_checked_before_the_folder_is_touched(tmp_path) -> None:
    _scan(tmp_path)
    with pytest.raises(ValueError):
        Scan(small_model(), ["nope"])
    assert ScanResult.load(tmp_path).layers == ["relu1", "fc"]
