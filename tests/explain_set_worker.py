"""Run as a script under torchrun: Grad-CAM over the scan tests' small picture set, into OUT_FOLDER.

    torchrun --nproc_per_node 2 tests/explain_set_worker.py OUT_FOLDER
"""

from __future__ import annotations

import sys

import torch
from scan_worker import pictures, small_model

from convscope.attribution.dataset import explain_set

BATCH = 3


def run(out: str) -> None:
    torch.set_num_threads(1)
    explain_set(small_model(), pictures(), out, "grad_cam", target="true", batch_size=BATCH, progress=False)


if __name__ == "__main__":
    run(sys.argv[1])
