"""The same scan in two gloo processes under torchrun merges to exactly the single-process result."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from scan_worker import LAYERS, assert_same_scan, pictures, small_model

from convscope.scan import Scan, ScanResult

WORKER = Path(__file__).with_name("scan_worker.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_processes(worker: Path, out: Path) -> None:
    """Run ``worker OUT`` as two gloo processes under torchrun, on the CPU; fails with the processes' errors."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                   "PYTHONPATH": os.pathsep.join([str(worker.parent), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), str(worker), str(out)]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]


def test_two_gloo_processes_merge_exactly(tmp_path) -> None:
    run_two_processes(WORKER, tmp_path / "two")
    merged = ScanResult.load(tmp_path / "two", pictures=pictures())
    assert merged.config["batches_by_process"] == {"rank0": 4, "rank1": 4}  # 23 pictures in batches of 3

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = Scan(small_model(), LAYERS, k=4).run(pictures(), tmp_path / "one", batch_size=3, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert_same_scan(merged, single)
