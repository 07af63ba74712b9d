"""Merging the progress of every scanning process into the finished scan folder."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from convscope.scan import storage
from convscope.scan.freshness import DIGEST_SIZE
from convscope.scan.recorder import LayerRecorder


def finalize(folder: Path, fields: dict[str, dict[str, Any] | str],
             sources: dict[str, list[int]] | None = None) -> None:
    """Write ``layers/LAYER.pt`` and ``index.pt`` from ``progress/``, mark the scan complete, drop ``progress/``.

    ``sources``: the sizes and times of the pictures' files (see :mod:`convscope.scan.freshness`)."""
    config = storage.read_config(folder)
    count, layers = int(config["count"]), list(config["layers"])
    writers = sorted((folder / storage.PROGRESS).glob("rank*/state.pt"))
    states = [storage.load_state(path) for path in writers]
    merged = {name: LayerRecorder(name, int(config["k"])) for name in layers}
    done: list[int] = []
    for state in states:
        done.extend(state["done"])
        for name in layers:
            _merge(merged[name], LayerRecorder.from_state(state["layers"][name]))
    expected = -(-count // int(config["batch_size"]))
    if sorted(done) != list(range(expected)):
        missing = sorted(set(range(expected)) - set(done))
        raise ValueError(f"the scan in {folder} is incomplete (batches {missing[:5]} … missing); run it again")
    labels = torch.full((count,), -1, dtype=torch.long)
    digests: torch.Tensor | None = torch.zeros(count, DIGEST_SIZE, dtype=torch.uint8)
    features: dict[str, torch.Tensor] = {}
    for path, state in zip(writers, states, strict=True):
        for number in range(int(state["parts"])):
            part = storage.load(path.parent / f"part_{number:05d}.pt")
            images = part["images"]
            labels[images] = part["labels"]
            if digests is not None and isinstance(part.get("digests"), torch.Tensor):
                digests[images] = part["digests"]
            else:  # progress saved by an older version: the pictures cannot be checked later
                digests = None
            for name in layers:
                rows = part["features"][name]
                if name not in features:
                    features[name] = torch.zeros(count, rows.shape[1], dtype=rows.dtype)
                features[name][images] = rows
    shapes: dict[str, list[int]] = {}
    for name in layers:
        recorder = merged[name]
        statistics = recorder.statistics.result()  # refuses a layer that saw no batch
        assert recorder.shape is not None and recorder.top is not None, "both are set by the layer's first batch"
        shapes[name] = list(recorder.shape)
        storage.save_atomically({"layer": name, "shape": shapes[name], "features": features[name],
                                 "top": recorder.top.filled().state(), "statistics": asdict(statistics)},
                                storage.layer_file(folder, name))
    storage.save_atomically({"labels": labels, **({} if digests is None else {"digests": digests})},
                            folder / storage.INDEX)
    config.update(complete=True, sources=sources if digests is not None else None,
                  finished=time.strftime("%Y-%m-%d %H:%M:%S"), receptive_fields=fields,
                  batches_by_process={path.parent.name: len(state["done"])
                                      for path, state in zip(writers, states, strict=True)},
                  shapes=shapes)
    storage.write_config(folder, config)
    storage.remove_progress(folder)


def _merge(into: LayerRecorder, other: LayerRecorder) -> None:
    if other.top is None or other.shape is None:  # it saw no batch (the first batch sets both)
        return
    if into.shape is not None and tuple(other.shape) != tuple(into.shape):
        raise ValueError(f"layer {into.layer!r} has outputs {other.shape} in one process and {into.shape} in "
                         "another")
    into.shape = other.shape
    into.top = other.top if into.top is None else into.top.merged(other.top)
    into.statistics.merge(other.statistics)
