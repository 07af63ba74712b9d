"""Whether an allocation fits the machine, asked before it is made (a 100 GB request is refused in one line
instead of ending in the allocator's traceback or the kernel's out-of-memory killer)."""

from __future__ import annotations

import os

import torch


def available_bytes(device: torch.device | str | None = None) -> int | None:
    """Free memory on ``device`` (CUDA: free GPU memory), else the host's available memory; ``None`` if unknown."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(needed: float, what: str, hint: str, device: torch.device | str | None = None) -> None:
    """A one-line ``ValueError`` when ``needed`` bytes for ``what`` exceed the memory available on ``device``."""
    free = available_bytes(device)
    if free is not None and needed > free:
        where = "GPU memory" if device is not None and torch.device(device).type == "cuda" else "memory"
        raise ValueError(f"{what} would take about {size_text(needed)} of {where}, more than the {size_text(free)} "
                         f"available: {hint}")


def size_text(count: float) -> str:
    """Bytes as text: ``5.2 GB``, ``812 MB``, ``3.0 kB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} bytes"
