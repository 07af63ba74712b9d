"""Attribution over a whole picture set: raw maps in chunk files, resumable, split over ``torchrun`` processes.

The pictures go through the method in fixed chunks (chunk ``c`` holds pictures
``c·B … (c+1)·B-1``). Each chunk is written, when done, to ``chunks/chunk_NNNNN.pt`` under a
temporary name and renamed, with the picture indices and names, labels, explained classes,
their scores (logits) and probabilities, the raw maps, the share of each map's mass that lies
in the picture's centre and a small map of where the mass falls. A rerun with the same
settings computes only the missing chunks, and since a chunk depends on nothing but its
pictures, an interrupted and resumed run gives byte-identical files; under ``torchrun`` each
process takes every n-th missing chunk. When all chunks are there, ``summary.csv`` and
``summary.png`` (:mod:`convscope.attribution.dataset_summary`) say per class how much of the
map mass falls in the centre, so that a model looking at the background stands out.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from convscope.attribution.base import Attribution, RowClasses, image_classes
from convscope.attribution.explain import make_method_from
from convscope.data.pictures import FittedPictures, PictureSet
from convscope.logs import get_logger, timed
from convscope.models.layers import layer_name
from convscope.models.model import Model, as_model
from convscope.progress import progress_bar
from convscope.reprs import short_repr
from convscope.scan import storage
from convscope.scan.distributed import join_workers
from convscope.scan.lock import folder_lock
from convscope.scan.own_files import OwnFiles
from convscope.scan.runner import (
    FittedWithDigests,
    PictureDigests,
    batch_fingerprint,
    check_batch_size,
    loader_workers,
    plain_loader_errors,
)
from convscope.targets import ClassScore, Target, TopClass, as_target, class_probabilities, class_scores

log = get_logger(__name__)

FORMAT = 1
CONFIG = "explain.json"
CHUNKS = "chunks"
CHUNK_KEYS = ("images", "classes", "maps", "centre", "where", "fingerprint")
WHERE_SIZE = 32  # side of the small "where the mass falls" map kept per picture
IDENTITY = ("format", "model", "method", "options", "layer", "target", "dataset", "count", "batch_size", "centre",
            "preprocess")
LOCK = "explain.lock"
# what a run writes: nothing else in its folder is ever removed
EXPLAIN_FILES = OwnFiles("explain-set", CONFIG, files=("summary.csv", "summary.png", f"{CHUNKS}/chunk_*.pt"),
                         folders=(CHUNKS,), always=(LOCK,))
TARGET_HELP = "'true' (each picture's label), 'top' (the model's top class) or a class index or name"


@dataclass(frozen=True)
class SetTarget:
    """What to explain for every picture: its label (``'true'``), the top class (``'top'``) or one class."""

    kind: str
    index: int | None = None

    @staticmethod
    def parse(text: str | int | None, model: Model) -> SetTarget:
        if text is None or (isinstance(text, str) and text.strip().lower() in ("top", "")):
            return SetTarget("top")
        if isinstance(text, str) and text.strip().lower() == "true":
            return SetTarget("true")
        if isinstance(text, str) and ":" in text:
            raise ValueError(f"over a picture set the target is {TARGET_HELP}, got {text!r}; channel and neuron "
                             "targets are for `convscope explain IMAGE`")
        return SetTarget("class", model.class_index(text))

    def describe(self) -> str:
        return {"top": "top", "true": "true"}.get(self.kind, str(self.index))


@dataclass
class SetRun:
    """What :func:`explain_set` did: the folder, how many pictures this call explained and in how many seconds."""

    __repr__ = short_repr

    folder: Path
    count: int
    explained: int
    seconds: float
    chunks_by_process: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Pictures per second explained in this call (loading, the method and writing included)."""
        return self.explained / self.seconds if self.seconds > 0 else float("nan")


def centre_box(height: int, width: int, centre: float) -> tuple[slice, slice]:
    """The central box covering ``centre`` of each side (0.5: the middle half of rows and of columns)."""
    top, left = round(height * (1 - centre) / 2), round(width * (1 - centre) / 2)
    return slice(top, height - top), slice(left, width - left)


def centre_share(heat: Tensor, centre: float) -> Tensor:
    """Share of each map's mass ``[B,H,W]`` (non-negative) inside the centre box; NaN for an all-zero map."""
    rows, cols = centre_box(heat.shape[-2], heat.shape[-1], centre)
    total = heat.flatten(1).sum(1)
    inside = heat[:, rows, cols].flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(heat.dtype).tiny), torch.nan)


def where_map(heat: Tensor, size: int = WHERE_SIZE) -> Tensor:
    """Each map ``[B,H,W]`` pooled to ``size``² and scaled to sum 1 (all zeros for an all-zero map)."""
    pooled = F.adaptive_avg_pool2d(heat[:, None].float(), size)[:, 0]
    total = pooled.flatten(1).sum(1).view(-1, 1, 1)
    return torch.where(total > 0, pooled / total.clamp_min(torch.finfo(pooled.dtype).tiny), 0.0)


class _Seen(Target):
    """Wraps a target and keeps the first output it is evaluated on: the clean pictures' output, in every method."""

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.output: Tensor | None = None

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.layers

    def _see(self, output: Tensor) -> None:
        if self.output is None:
            self.output = output.detach()

    def __call__(self, output: Tensor, activations: Any) -> Tensor:
        self._see(output)
        return self.inner(output, activations)

    def classes(self, output: Tensor) -> Tensor | None:
        self._see(output)
        return self.inner.classes(output)


def label_classes(pictures: PictureSet, model: Model) -> Tensor:
    """The model's class for each label of the set (by name when the set names its classes); checked."""
    labels = pictures.labels()
    if bool((labels < 0).any()):
        first = int((labels < 0).nonzero()[0, 0])
        raise ValueError(f"--target true needs labelled pictures, but picture {first} ({pictures.name(first)}) has "
                         "none; use --target top or a class")
    names = pictures.class_names
    if names:
        try:
            return torch.tensor([model.class_index(name) for name in names])
        except ValueError as error:
            raise ValueError(f"--target true maps the set's classes to the model's by name: {error}; use "
                             "--target top or a class") from error
    count = len(model.classes())
    if int(labels.max()) >= count:
        raise ValueError(f"label {int(labels.max())} is not a class of the model ({count} classes); use --target "
                         "top or a class")
    return torch.arange(count)


def chunk_file(folder: Path, chunk: int) -> Path:
    return folder / CHUNKS / f"chunk_{chunk:05d}.pt"


class SetExplainer:
    """One method over a picture set, into a folder of chunk files (see the module's description)."""

    def __init__(self, model: Model | nn.Module, method: str = "grad_cam", *, target: str | int | None = "top",
                 layer: str | nn.Module | None = None, centre: float = 0.5, **options: object) -> None:
        self.model = as_model(model)
        if not isinstance(centre, int | float) or isinstance(centre, bool) or not 0 < centre < 1:
            raise ValueError(f"centre is the share of each side that the centre box covers, in (0, 1); got "
                             f"{centre!r}")
        self.method: Attribution = make_method_from(method, self.model, options, layer=layer)
        self.options = {k: v for k, v in options.items() if v is not None}
        self.layer = None if layer is None else layer_name(self.model.net, layer)
        self.target = SetTarget.parse(target, self.model)
        self.centre = float(centre)

    def run(self, pictures: PictureSet, out: str | Path, *, batch_size: int = 32, workers: int | None = None,
            overwrite: bool = False, progress: bool = True, model_source: dict[str, Any] | None = None) -> SetRun:
        """Explain every picture of ``pictures`` into ``out``; resume what is there, then write the summary."""
        if not isinstance(pictures, PictureSet):
            raise TypeError(f"explain a convscope.data.PictureSet (ImageFolder, FashionMNIST, SampleCrops, "
                            f"TensorPictures), got {type(pictures).__name__}")
        check_batch_size(batch_size)
        if len(pictures) == 0:
            raise ValueError("the picture set is empty: there is nothing to explain")
        loader_workers(pictures, workers)
        mapping = label_classes(pictures, self.model) if self.target.kind == "true" else None
        folder, team = Path(out), join_workers()
        config = self._config(pictures, batch_size, model_source)
        self._chunk(pictures, range(0, 1), mapping)  # one picture through the method before anything is written
        created = not folder.exists()
        try:
            with ExitStack() as held:
                return self._run(pictures, folder, config, batch_size, workers, overwrite, progress, mapping, team,
                                 held)
        except BaseException:
            if team.main and created and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            raise

    def _run(self, pictures: PictureSet, folder: Path, config: dict[str, Any], batch_size: int, workers: int | None,
             overwrite: bool, progress: bool, mapping: Tensor | None, team: Any, held: ExitStack) -> SetRun:
        if team.main:
            try:
                held.enter_context(folder_lock(folder, LOCK, "explained"))  # one run at a time writes the folder
                EXPLAIN_FILES.check(folder, overwrite)  # a folder of the user's is not written without overwrite
                self._prepare(folder, config, overwrite)
            except BaseException:
                team.all_ok(False)
                raise
        if not team.all_ok(True):
            raise RuntimeError(f"{folder} cannot be written now (see the first process's error)")
        count = -(-len(pictures) // batch_size)
        missing = [c for c in range(count) if not chunk_file(folder, c).is_file()]
        self._check_unchanged(pictures, folder, [c for c in range(count) if c not in missing], batch_size, workers,
                              team, config)
        mine = missing[team.rank::team.world]
        log.debug("explain %s: %d of %d chunks of %d written before (cache hits), %d to explain here", folder,
                  count - len(missing), count, batch_size, len(mine))
        team.barrier()  # everyone has seen what is done before anyone writes
        start = time.perf_counter()
        failed: BaseException | None = None
        try:
            self._explain(pictures, folder, mine, batch_size, workers, mapping, progress and team.main, config)
            if team.main:
                check_settings(folder, config)  # the folder is still this run's: its summary may be written
        except BaseException as error:  # written chunks stay valid; re-raised once all processes agree
            failed = error
        seconds = time.perf_counter() - start
        log.debug("explain %s: %d chunk(s) in %.2f s", folder, len(mine), seconds)
        if not team.all_ok(failed is None):
            if failed is not None:
                raise failed
            raise RuntimeError("another explaining process failed; rerun the same command to resume")
        explained = sum(len(_chunk_range(c, batch_size, len(pictures))) for c in mine)
        if team.main:
            from convscope.attribution.dataset_summary import write_summary

            with timed(log, f"explain {folder}: summary"):
                write_summary(folder)
            _write_config(folder, {**config, "complete": True})
        team.barrier()
        return SetRun(folder, len(pictures), explained, seconds, {f"rank{team.rank}": len(mine)})

    def _config(self, pictures: PictureSet, batch_size: int, source: dict[str, Any] | None) -> dict[str, Any]:
        config = {"format": FORMAT,
                  "model": {"name": self.model.name, "fingerprint": storage.fingerprint(self.model.net)},
                  "model_source": source or {"name": self.model.name, "weights": None},
                  "preprocess": asdict(self.model.preprocess), "input_size": list(self.model.preprocess.input_size),
                  "method": self.method.name, "options": {k: _plain(v) for k, v in self.options.items()},
                  "layer": self.layer, "target": self.target.describe(), "centre": self.centre,
                  "batch_size": batch_size, "dataset": pictures.spec(), "count": len(pictures),
                  "class_names": self.model.classes(), "complete": False}
        return json.loads(json.dumps(config))  # as it reads back from the file: lists, not tuples

    def _prepare(self, folder: Path, config: dict[str, Any], overwrite: bool) -> None:
        """Create the folder, or check that it holds this run (``overwrite``: clear what an earlier run wrote)."""
        if overwrite:
            clear(folder)
        path = folder / CONFIG
        if path.is_file():
            existing = read_config(folder)
            difference = storage.first_difference(existing, config, IDENTITY)
            if difference is not None:
                raise ValueError(f"{str(folder)!r} holds maps of a different run ({difference.said('there', 'now')});"
                                 " use another --out folder, or --overwrite to start again")
        for temporary in EXPLAIN_FILES.temporaries(folder):  # left by an interrupted writer (the lock is held)
            temporary.unlink(missing_ok=True)
        _write_config(folder, config)

    def _explain(self, pictures: PictureSet, folder: Path, mine: list[int], batch_size: int, workers: int | None,
                 mapping: Tensor | None, progress: bool, config: dict[str, Any]) -> None:
        if not mine:
            return
        settings = settings_digest(config)
        loader = DataLoader(FittedWithDigests(pictures, self.model.preprocess),
                            batch_sampler=[list(_chunk_range(c, batch_size, len(pictures))) for c in mine],
                            num_workers=loader_workers(pictures, workers), pin_memory=self.model.device.type == "cuda")
        bar = progress_bar(total=sum(len(_chunk_range(c, batch_size, len(pictures))) for c in mine), unit="img",
                           desc=f"explain {self.method.name}", enabled=progress, smoothing=0.1)
        try:
            for chunk, (indices, fitted, labels, digests) in zip(mine, plain_loader_errors(loader), strict=True):
                found = self._maps(pictures, indices, fitted, labels, mapping)
                found["fingerprint"] = batch_fingerprint(digests)  # to tell, on a resume, that the pictures are same
                found["settings"] = settings  # to tell that every chunk comes from the same settings
                check_settings(folder, config)
                storage.save_atomically(found, chunk_file(folder, chunk))
                bar.update(len(indices))
        finally:
            bar.close()

    def _check_unchanged(self, pictures: PictureSet, folder: Path, done: list[int], batch_size: int,
                         workers: int | None, team: Any, config: dict[str, Any]) -> None:
        """Refuse to resume when the pictures of written chunks changed (their content fingerprints differ), or
        a chunk was written with other settings."""
        mine = done[team.rank::team.world]
        changed = []
        settings, mixed = settings_digest(config), None
        try:
            for chunk in mine:
                check_chunk_settings(storage.load(chunk_file(folder, chunk), mmap=True), chunk_file(folder, chunk),
                                     settings)
        except ValueError as error:  # raised once all processes agree
            mixed = error
        if mine and mixed is None:
            loader = DataLoader(PictureDigests(pictures), num_workers=loader_workers(pictures, workers),
                                batch_sampler=[list(_chunk_range(c, batch_size, len(pictures))) for c in mine])
            changed = [c for c, digests in zip(mine, plain_loader_errors(loader), strict=True)
                       if batch_fingerprint(digests) != load_chunk(chunk_file(folder, c))["fingerprint"]]
        if not team.all_ok(not changed and mixed is None):
            if mixed is not None:
                raise mixed
            if changed:
                first = _chunk_range(changed[0], batch_size, len(pictures))
                raise ValueError(f"pictures changed since they were explained (chunks {changed[:5]}"
                                 f"{' …' if len(changed) > 5 else ''}, e.g. pictures {first.start} … {first.stop - 1});"
                                 " resuming would mix old and new maps: --overwrite starts again")
            raise RuntimeError("another explaining process found changed pictures (see its error)")

    def _chunk(self, pictures: PictureSet, indices: range, mapping: Tensor | None) -> dict[str, Any]:
        fitted = FittedPictures(pictures, self.model.preprocess)
        items = [fitted[i] for i in indices]
        return self._maps(pictures, torch.tensor([i for i, _, _ in items]), torch.stack([p for _, p, _ in items]),
                          torch.tensor([label for _, _, label in items]), mapping)

    def _maps(self, pictures: PictureSet, indices: Tensor, fitted: Tensor, labels: Tensor,
              mapping: Tensor | None) -> dict[str, Any]:
        """One chunk: the method on the device, everything moved to the host once at the end."""
        device = self.model.device
        inputs = self.model.preprocess.normalize(fitted.to(device, non_blocking=True))
        seen = _Seen(as_target(self._target(labels, mapping, device), self.model))  # read as the model's output kind
        maps = self.method.attribute(inputs, target=seen)
        output = seen.output
        if output is None or output.shape[0] != inputs.shape[0]:  # a method that never evaluated the target
            output = _clean_output(self.model, inputs)
        classes = image_classes(seen.inner, output)
        assert classes is not None, "a set's target is a class: the top one, the true one or a named one"
        heat = self.method.heat(maps, tuple(inputs.shape[-2:])).float()
        kind = getattr(seen.inner, "kind", self.model.output)
        scores = class_scores(output.float(), kind).gather(1, classes[:, None])[:, 0]
        probabilities = class_probabilities(output.float(), kind).gather(1, classes[:, None])[:, 0]
        names = [pictures.name(int(i)) for i in indices]
        return {"images": indices.long().clone(), "names": names, "labels": labels.long().clone(),
                "classes": classes.cpu(), "scores": scores.cpu(), "probabilities": probabilities.cpu(),
                "maps": maps.detach().float().cpu().clone(memory_format=torch.contiguous_format),
                "centre": centre_share(heat, self.centre).cpu(), "where": where_map(heat).cpu()}

    def _target(self, labels: Tensor, mapping: Tensor | None, device: torch.device) -> Target:
        if self.target.kind == "top":
            return TopClass()
        if self.target.kind == "class":
            return ClassScore(int(self.target.index))  # type: ignore[arg-type]
        return RowClasses(mapping[labels.long()].to(device))  # type: ignore[index]


def _clean_output(model: Model, inputs: Tensor) -> Tensor:
    from convscope.attribution.base import forward

    return forward(model, inputs)[0]


def _chunk_range(chunk: int, batch_size: int, count: int) -> range:
    return range(chunk * batch_size, min((chunk + 1) * batch_size, count))


def _plain(value: object) -> object:
    return value if isinstance(value, int | float | str | bool) or value is None else repr(value)


def _write_config(folder: Path, config: dict[str, Any]) -> None:
    storage.write_json(folder / CONFIG, config)


def read_config(folder: str | Path) -> dict[str, Any]:
    """The settings of the run in ``folder``; a ``ValueError`` when it holds none or it is damaged."""
    return storage.read_json(Path(folder) / CONFIG, IDENTITY, what="the run's settings",
                             recover="--overwrite starts again",
                             missing=f"{str(folder)!r} holds no maps ({CONFIG} is missing): run `convscope "
                                     "explain-set DATA --out FOLDER` first")


def clear(folder: Path) -> None:
    """Remove what a run wrote into ``folder`` (and nothing else; the lock stays with its holder)."""
    EXPLAIN_FILES.clear(folder)


def settings_digest(config: dict[str, Any]) -> str:
    """A short digest of the settings that make a run's maps what they are (``IDENTITY``)."""
    identity = json.dumps({key: config.get(key) for key in IDENTITY}, sort_keys=True)
    return hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


def check_settings(folder: Path, config: dict[str, Any]) -> None:
    """Refuse to go on when ``explain.json`` no longer holds this run's settings (another run took the folder)."""
    now = read_config(folder)
    if settings_digest(now) != settings_digest(config):
        difference = storage.first_difference(now, config, IDENTITY)  # None: 1 and 1.0 differ only in JSON
        changed = difference.said("now", "in this run") if difference is not None else "a setting"
        raise ValueError(f"the settings in {folder / CONFIG} changed while this run was writing ({changed}): "
                         "another run took the folder; this one stops so as not to mix their maps")


def check_chunk_settings(chunk: dict[str, Any], path: Path, settings: str) -> None:
    """Refuse a chunk written with other settings than ``settings`` (chunks of old versions carry none)."""
    found = chunk.get("settings") if isinstance(chunk, dict) else None
    if found is not None and found != settings:
        raise ValueError(f"{path} was written by a run with other settings than {CONFIG} names (two runs wrote "
                         "into the folder); its maps cannot be mixed with the others: --overwrite starts again")


def load_chunks(folder: str | Path) -> list[dict[str, Any]]:
    """Every chunk of a finished or partial run, in order."""
    return [load_chunk(path, mmap=False) for path in sorted((Path(folder) / CHUNKS).glob("chunk_*.pt"))]


def load_chunk(path: Path, *, mmap: bool = True) -> dict[str, Any]:
    """One chunk file, checked to hold what a resume and the summary read (a damaged one names ``--overwrite``)."""
    return storage.load(path, mmap=mmap, keys=CHUNK_KEYS, recover="`convscope explain-set … --overwrite` starts again")


def plain_rate(model: Model | nn.Module, pictures: PictureSet, *, batch_size: int = 32, chunks: int = 8,
               workers: int | None = None) -> float:
    """Pictures per second of a bare forward and backward pass (top class, to the input) over the first ``chunks``.

    The same loader, batches and device as :class:`SetExplainer`: the yardstick for its rate.
    """
    from convscope.hooks import inspection_mode

    model = as_model(model)
    count = min(chunks, -(-len(pictures) // batch_size))
    loader = DataLoader(FittedPictures(pictures, model.preprocess),
                        batch_sampler=[list(_chunk_range(c, batch_size, len(pictures))) for c in range(count)],
                        num_workers=loader_workers(pictures, workers), pin_memory=model.device.type == "cuda")
    done, start = 0, time.perf_counter()
    with inspection_mode(model.net, grad_params=None):
        for _indices, fitted, _labels in plain_loader_errors(loader):
            inputs = model.preprocess.normalize(fitted.to(model.device, non_blocking=True)).requires_grad_(True)
            output = model.net(inputs)
            (grad,) = torch.autograd.grad(output.max(1).values.sum(), inputs)
            done += len(fitted)
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)
    return done / (time.perf_counter() - start)


def explain_set(model: Model | nn.Module, pictures: PictureSet, out: str | Path, method: str = "grad_cam", *,
                target: str | int | None = "top", layer: str | nn.Module | None = None, centre: float = 0.5,
                batch_size: int = 32, workers: int | None = None, overwrite: bool = False, progress: bool = True,
                options: Mapping[str, object] | None = None) -> SetRun:
    """``method`` over every picture of ``pictures`` into the folder ``out`` (see :class:`SetExplainer`)."""
    explainer = SetExplainer(model, method, target=target, layer=layer, centre=centre, **(options or {}))
    return explainer.run(pictures, out, batch_size=batch_size, workers=workers, overwrite=overwrite,
                         progress=progress)
