"""The methods × metrics report over a picture set, streamed in chunks and resumable like ``explain-set``.

Chunk ``c`` holds pictures ``c·B … (c+1)·B-1``; each is read, evaluated by
:func:`~convscope.analysis.metrics.report.evaluate_methods` (seed ``seed + c``: a chunk depends on nothing but its
pictures) and its per-picture values written atomically to ``chunks/chunk_NNNNN.pt`` with the pictures'
fingerprint and a digest of the settings. Only one chunk of pictures is in memory at a time; what is kept is one
number per picture, method and metric. A run holds a lock on its folder; a rerun with the same settings evaluates
only the missing chunks (the same report as one uninterrupted run); other settings, or changed pictures, are
refused in one line (``overwrite`` starts again). Metrics that read a set (sufficiency) see one chunk's pictures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from convscope.analysis.metrics.report import EvaluationReport, evaluate_methods, metric_names
from convscope.data.pictures import PictureSet
from convscope.models.model import Model
from convscope.progress import progress_bar
from convscope.scan import storage
from convscope.scan.lock import folder_lock
from convscope.scan.own_files import OwnFiles
from convscope.scan.runner import FittedWithDigests, batch_fingerprint, loader_workers, plain_loader_errors

FORMAT = 1
CONFIG = "metrics_set.json"
CHUNKS = "chunks"
LOCK = "metrics.lock"
IDENTITY = ("format", "model", "methods", "metrics", "dataset", "count", "chunk", "seed", "preprocess")
REPORT_FILES = ("metrics.md", "metrics.csv", "metrics.png", "metrics.json")
SET_FILES = OwnFiles("check", CONFIG, files=(*REPORT_FILES, f"{CHUNKS}/chunk_*.pt"), folders=(CHUNKS,),
                     always=(LOCK,))
RECOVER = "--overwrite starts again"


def chunk_file(folder: Path, chunk: int) -> Path:
    return folder / CHUNKS / f"chunk_{chunk:05d}.pt"


def _digest(config: dict[str, Any]) -> str:
    identity = json.dumps({key: config.get(key) for key in IDENTITY}, sort_keys=True)
    return hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


def evaluate_set(model: Model, pictures: PictureSet, out: str | Path, methods: Sequence[str],
                 metrics: Sequence[str] | None = None, *, chunk: int = 50, seed: int = 0, overwrite: bool = False,
                 workers: int | None = None, progress: bool = False) -> EvaluationReport:
    """The report of ``methods`` × ``metrics`` over every picture of ``pictures`` (each explained for the model's
    top class), chunk by chunk into ``out`` (see the module's description)."""
    from convscope.analysis.explainers import method_names

    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive number of pictures, got {chunk!r}")
    if len(pictures) == 0:
        raise ValueError("the picture set is empty: there is nothing to evaluate")
    names, chosen = method_names(methods), metric_names(metrics)
    folder = Path(out)
    config = json.loads(json.dumps({
        "format": FORMAT, "model": {"name": model.name, "fingerprint": storage.fingerprint(model.net)},
        "preprocess": asdict(model.preprocess), "methods": names, "metrics": chosen, "dataset": pictures.spec(),
        "count": len(pictures), "chunk": chunk, "seed": seed}))
    settings = _digest(config)
    count = -(-len(pictures) // chunk)
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder, LOCK, "evaluated"):
        SET_FILES.check(folder, overwrite)
        _prepare(folder, config, overwrite)
        missing = [c for c in range(count) if not chunk_file(folder, c).is_file()]
        done = {c: _load(folder, c, settings)["fingerprint"] for c in range(count) if c not in missing}
        fitted = FittedWithDigests(pictures, model.preprocess)
        loader = DataLoader(fitted, num_workers=loader_workers(pictures, workers),
                            batch_sampler=[list(range(c * chunk, min((c + 1) * chunk, len(pictures))))
                                           for c in range(count)])
        bar = progress_bar(total=len(pictures), unit="img", desc="metrics", enabled=progress)
        try:
            for c, (_, batch, _, digests) in enumerate(plain_loader_errors(loader)):
                if c in done:
                    if batch_fingerprint(digests) != done[c]:
                        raise ValueError(f"pictures of chunk {c} changed since they were evaluated; resuming would "
                                         f"mix old and new values: {RECOVER}")
                else:
                    inputs = model.preprocess.normalize(batch.to(model.device))
                    report = evaluate_methods(model, inputs, names, chosen, seed=seed + c)
                    storage.save_atomically({"chunk": c, "values": report.values, "metrics": report.metrics,
                                             "skipped": report.skipped, "fingerprint": batch_fingerprint(digests),
                                             "settings": settings}, chunk_file(folder, c))
                bar.update(len(batch))
        finally:
            bar.close()
        parts = [_load(folder, c, settings) for c in range(count)]
    values = {m: {metric: torch.cat([p["values"][m][metric] for p in parts]) for metric in parts[0]["metrics"]}
              for m in names}
    return EvaluationReport(model.name, names, list(parts[0]["metrics"]), values, len(pictures),
                            dict(parts[0]["skipped"]))


def _prepare(folder: Path, config: dict[str, Any], overwrite: bool) -> None:
    """Check that ``folder`` holds this run or none (``overwrite``: clear what an earlier run wrote), then mark it."""
    if overwrite:
        SET_FILES.clear(folder)
    path = folder / CONFIG
    if path.is_file():
        existing = storage.read_json(path, IDENTITY, what="the run's settings", recover=RECOVER, missing="")
        difference = storage.first_difference(existing, config, IDENTITY)
        if difference is not None:
            raise ValueError(f"{str(folder)!r} holds the metrics of a different run "
                             f"({difference.said('there', 'now')}); use another --out folder, or --overwrite to "
                             "start again")
    for temporary in (folder / CHUNKS).glob(".chunk_*.tmp") if (folder / CHUNKS).is_dir() else ():
        temporary.unlink(missing_ok=True)  # left by an interrupted writer (the lock is held)
    storage.write_json(path, config)


def _load(folder: Path, chunk: int, settings: str) -> dict[str, Any]:
    data = storage.load(chunk_file(folder, chunk), keys=("chunk", "values", "metrics", "skipped", "fingerprint",
                                                         "settings"), recover=RECOVER)
    if data["settings"] != settings or data["chunk"] != chunk:
        raise ValueError(f"{chunk_file(folder, chunk)} was written with other settings; {RECOVER}")
    return data
