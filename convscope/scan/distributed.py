"""Running one scan in several processes with ``torchrun`` (torch.distributed: NCCL on GPUs, gloo on CPUs).

https://pytorch.org/docs/stable/elastic/run.html — torchrun sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; each process scans its share of the batches and process 0 merges the results.
The output folder must be shared by all processes (one machine, or a shared file system).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Workers:
    """This process's place among the scanning processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_ok(self, ok: bool) -> bool:
        """Whether every process reports ``ok`` (so that all stop together when one fails)."""
        if self.world == 1:
            return ok
        flag = torch.tensor([0 if ok else 1], device=_collective_device())
        dist.all_reduce(flag)
        return int(flag.item()) == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device() -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` under torchrun with GPUs, else CUDA or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if launched_by_torchrun() else
                            torch.cuda.current_device())
    return torch.device("cpu")


def join_workers() -> Workers:
    """Join the process group when started by torchrun (once); otherwise a single worker."""
    if not launched_by_torchrun():
        return Workers()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_device())
        dist.init_process_group(backend=backend)
    return Workers(dist.get_rank(), dist.get_world_size())


def _collective_device() -> torch.device:
    return local_device() if dist.get_backend() == "nccl" else torch.device("cpu")
