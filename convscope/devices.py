"""Choosing the device a computation runs on."""

from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or CUDA when it is available, else the CPU."""
    if isinstance(device, str) and not device.strip():
        raise ValueError("the device is empty: use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'")
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1', 'mps' or 'auto'") from error
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but CUDA is not available here: use --device cpu")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s), cuda:0 …")
    elif chosen.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r} (Apple Metal) is not available here: use --device cpu")
    elif chosen.type != "cpu":
        raise ValueError(f"device {device!r} is not supported: use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
                         + (" (meta tensors hold no values to look at)" if chosen.type == "meta" else ""))
    return chosen
