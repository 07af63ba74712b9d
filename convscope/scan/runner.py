"""One streaming pass over a picture set, recording chosen layers; resumable and splittable over processes.

Pictures go through the network in fixed batches (batch ``b`` holds pictures
``b·B … (b+1)·B-1``). Each batch's records are computed on the device inside the layer
hooks and committed only when the whole batch is done; the committed state is saved every
``checkpoint_every`` seconds. A rerun with the same settings skips the saved batches; under
``torchrun`` each process takes every n-th remaining batch. Because batches never change
and ties are ordered by image index, every split of the work gives the same results.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from convscope.data.any_dataset import as_picture_set
from convscope.data.pictures import FittedPictures, PictureSet
from convscope.hooks import inspection_mode, refuse_script_module
from convscope.logs import get_logger, timed
from convscope.models.layers import get_layer, layer_name
from convscope.models.model import Model, as_model
from convscope.models.preprocessing import Preprocess
from convscope.models.tokens import channels_first_problem, prefix_tokens
from convscope.progress import progress_bar
from convscope.scan import storage
from convscope.scan.distributed import Workers, join_workers
from convscope.scan.finalize import finalize
from convscope.scan.freshness import check_pictures, file_stats, picture_digest
from convscope.scan.lock import scan_lock
from convscope.scan.receptive_field import receptive_fields
from convscope.scan.recorder import POOLINGS, BatchRecord, LayerRecorder
from convscope.scan.result import ScanResult

log = get_logger(__name__)


class _StopForward(Exception):
    """Raised by the last recorded layer's hook: the rest of the network is not needed."""


class Scan:
    """Record ``layers`` of ``model`` over a picture set in one pass.

    Per layer: one feature vector per picture (``pooling``: the ``mean`` or ``max`` over
    positions, or ``flatten`` for everything), each channel's ``k`` strongest pictures with
    the position of their strongest response (Zeiler & Fergus's top-9,
    https://arxiv.org/abs/1311.2901), and per-channel statistics (for dead filters).
    """

    def __init__(self, model: Model | nn.Module, layers: Sequence[str | nn.Module], *, k: int = 9,
                 pooling: str = "mean") -> None:
        self.model = as_model(model)
        refuse_script_module(self.model.net)  # a scan hooks its layers
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        if not layers:
            raise ValueError("name at least one layer to scan (`convscope layers` lists them)")
        self.layers = list(dict.fromkeys(layer_name(self.model.net, layer) for layer in layers))
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k (how many top pictures per channel) must be a positive int, got {k!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
        self.k, self.pooling = k, pooling

    def run(self, pictures: PictureSet | Dataset, out: str | Path, *, batch_size: int = 64,
            workers: int | None = None,
            progress: bool = True, checkpoint_every: float = 60.0, overwrite: bool = False, wait: bool = False,
            stop_early: bool = True, model_source: dict[str, Any] | None = None) -> ScanResult:
        """Scan ``pictures`` into the folder ``out`` and return the result (also when it was already there).

        ``workers``: data-loading processes (default: none for in-memory sets, else up to 4).
        ``model_source`` (``{'name', 'weights'}``) lets later commands reload the model.
        One scan writes a folder at a time: another one raises (naming it), or waits with ``wait``.
        A folder that holds other files but no scan is refused unless ``overwrite``. ``overwrite``
        discards the folder's scan (its own files only), but only once one picture has gone through
        the layers; a scan that fails before saving any batch leaves no trace. A resume refuses
        batches whose pictures changed since they were scanned.
        """
        pictures = as_picture_set(pictures)  # any torch Dataset of (image, label) or image items
        check_batch_size(batch_size)
        if not isinstance(checkpoint_every, (int, float)) or not checkpoint_every >= 0:
            raise ValueError(f"checkpoint_every must be 0 or more seconds, got {checkpoint_every!r}")
        loader_workers(pictures, workers)
        folder = Path(out)
        team = join_workers()
        config = self._config(pictures, batch_size, model_source)
        created = not folder.exists()
        try:
            with ExitStack() as held:
                if self._prepare_folder(pictures, folder, config, overwrite, wait, team, held):
                    log.debug("scan %s is complete: read back, nothing to scan (cache hit)", folder)
                    result = ScanResult.load(folder, pictures=pictures)
                    check_pictures(result)  # a finished scan is returned only while its pictures are unchanged
                    return result
                sources = file_stats(pictures) if team.main else None  # before any picture is read
                try:
                    return self._resume(pictures, folder, batch_size, workers, progress, checkpoint_every,
                                        stop_early, team, sources, config)
                except BaseException:
                    if team.main and not storage.has_progress(folder):  # nothing saved: leave no stub behind
                        storage.clear(folder)
                    raise
        except BaseException:
            if team.main and created and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            raise

    def _resume(self, pictures: PictureSet, folder: Path, batch_size: int, workers: int | None, progress: bool,
                checkpoint_every: float, stop_early: bool, team: Workers,
                sources: dict[str, list[int]] | None, config: dict[str, Any]) -> ScanResult:
        states = [storage.load_state(p) for p in sorted((folder / storage.PROGRESS).glob("rank*/state.pt"))]
        done = {b for state in states for b in state["done"]}
        batches = _batches(len(pictures), batch_size)
        self._check_unchanged(pictures, batches, states, workers, team)
        mine = [b for b in range(len(batches)) if b not in done][team.rank::team.world]
        log.debug("scan %s: %d of %d batches of %d saved before (cache hits), %d to scan here; layers %s",
                  folder, len(done), len(batches), batch_size, len(mine), ", ".join(self.layers))
        team.barrier()  # everyone has read the saved progress before anyone writes
        writer = _Writer(folder, team.rank, self.layers, self.k, self.model.device, config)
        failed: BaseException | None = None
        try:
            with timed(log, "scan: forward passes"):
                self._scan(pictures, batches, mine, writer, batch_size, workers, progress and team.main,
                           checkpoint_every, stop_early)
        except BaseException as error:  # saved progress stays valid; re-raised once all processes agree
            failed = error
        try:
            writer.save()
            if team.main and failed is None:
                storage.check_still_ours(folder, config)  # the folder is still this scan's: it may be finished
        except BaseException as error:
            failed = failed or error
        if not team.all_ok(failed is None):
            if failed is not None:
                raise failed
            raise RuntimeError("another scanning process failed; rerun the same command to resume")
        if team.main:
            with timed(log, "scan: finalize (statistics, top patches)"):
                finalize(folder, self._fields(), sources)
        team.barrier()
        return ScanResult.load(folder, pictures=pictures)

    def _config(self, pictures: PictureSet, batch_size: int, source: dict[str, Any] | None) -> dict[str, Any]:
        preprocess = self.model.preprocess
        return {"format": storage.FORMAT,
                "model": {"name": self.model.name, "fingerprint": storage.fingerprint(self.model.net)},
                "model_source": source or {"name": self.model.name, "weights": None},
                "preprocess": asdict(preprocess),
                "layers": self.layers, "k": self.k, "pooling": self.pooling, "batch_size": batch_size,
                "dataset": pictures.spec(), "count": len(pictures), "class_names": pictures.class_names,
                "complete": False}

    def _prepare_folder(self, pictures: PictureSet, folder: Path, config: dict[str, Any], overwrite: bool,
                        wait: bool, team: Workers, held: ExitStack) -> bool:
        """Lock, then create or check the folder; True when it already holds this scan, complete.

        Before anything is written or deleted, one picture goes through the layers (:meth:`_probe`).
        """
        if team.main:
            try:
                held.enter_context(scan_lock(folder, wait=wait, on_wait=log.info))
                storage.SCAN_FILES.check(folder, overwrite)  # a folder of the user's is not written without overwrite
                existing = None
                if not overwrite and (folder / storage.CONFIG).is_file():
                    existing = storage.read_config(folder)
                    try:
                        storage.check_same_scan(existing, config, folder)
                    except ValueError:
                        if existing.get("complete") or storage.has_progress(folder):
                            raise
                        existing = None  # a scan that never saved a batch: nothing is lost by replacing it
                if existing is None or not existing.get("complete"):
                    self._probe(pictures)
                if existing is None:
                    storage.clear(folder)
                    storage.clean_orphans(folder, False)
                    storage.write_config(folder, config)
                else:
                    storage.clean_orphans(folder, bool(existing.get("complete")))
            except BaseException:
                team.all_ok(False)
                raise
        if not team.all_ok(True):
            raise RuntimeError(f"{folder} cannot be scanned now (see the first process's error)")
        return bool(storage.read_config(folder).get("complete"))

    def _probe(self, pictures: PictureSet) -> None:
        """Put the first picture through the layers: a scan that cannot run fails here, before touching the folder."""
        if len(pictures) == 0:
            raise ValueError("the picture set is empty: there is nothing to scan")
        fitted = FittedPictures(pictures, self.model.preprocess)[0][1]
        net, calls = self.model.net, dict.fromkeys(self.layers, 0)

        def hook_for(name: str):
            def hook(module: nn.Module, inputs: object, output: object) -> None:
                calls[name] += 1
                problem = channels_first_problem(_layer_output(name, calls[name], output),
                                                 (int(fitted.shape[-2]), int(fitted.shape[-1])), prefix_tokens(net))
                if problem:  # channels would be read from the wrong dimension
                    raise ValueError(f"a scan reads layers' feature maps [B,C,h,w] or vectors [B,C]; layer {name!r}: "
                                     f"{problem}. Scan a block that gives [B,C,h,w], or the pooled features")

            return hook

        handles = []
        with inspection_mode(net), torch.inference_mode():
            try:
                for name in self.layers:
                    handles.append(get_layer(net, name).register_forward_hook(hook_for(name)))
                net(self.model.preprocess.normalize(fitted[None].to(self.model.device, _dtype(net))))
            finally:
                for handle in handles:
                    handle.remove()
        _check_all_ran(self.layers, [name for name, number in calls.items() if number])

    def _check_unchanged(self, pictures: PictureSet, batches: list[range], states: list[dict[str, Any]],
                         workers: int | None, team: Workers) -> None:
        """Refuse to resume when the pictures of saved batches changed (their content fingerprints differ)."""
        saved = {int(b): f for state in states for b, f in state.get("fingerprints", {}).items()}
        mine = sorted(saved)[team.rank::team.world]
        changed = []
        if mine:
            loader = DataLoader(PictureDigests(pictures), batch_sampler=[list(batches[b]) for b in mine],
                                num_workers=loader_workers(pictures, workers))
            changed = [b for b, digests in zip(mine, plain_loader_errors(loader), strict=True)
                       if batch_fingerprint(digests) != saved[b]]
        if not team.all_ok(not changed):
            if changed:
                first = batches[changed[0]]
                raise ValueError(f"pictures changed since they were scanned (batches {changed[:5]}"
                                 f"{' …' if len(changed) > 5 else ''}, e.g. pictures {first.start} … "
                                 f"{first.stop - 1}); resuming would mix old and new features: "
                                 f"{storage.RECOVER}")
            raise RuntimeError("another scanning process found changed pictures (see its error)")

    def _fields(self) -> dict[str, dict[str, Any] | str]:
        height, width = self.model.preprocess.input_size
        example = torch.zeros(1, self.model.preprocess.channels, height, width, device=self.model.device,
                              dtype=_dtype(self.model.net))
        try:
            fields = receptive_fields(self.model.net, self.layers, example)
        except ValueError as error:  # the scan stays useful without patches
            return {"error": str(error)}
        return {name: field.to_dict() for name, field in fields.items()}

    def _scan(self, pictures: PictureSet, batches: list[range], mine: list[int], writer: _Writer,
              batch_size: int, workers: int | None, progress: bool, checkpoint_every: float,
              stop_early: bool) -> None:
        if not mine:
            return
        net, device, dtype = self.model.net, self.model.device, _dtype(self.model.net)
        loader = DataLoader(FittedWithDigests(pictures, self.model.preprocess),
                            batch_sampler=[list(batches[b]) for b in mine],
                            num_workers=loader_workers(pictures, workers), pin_memory=device.type == "cuda")
        records: dict[str, BatchRecord] = {}
        calls = {name: 0 for name in self.layers}
        state = _Pass(torch.empty(0, dtype=torch.long))

        def hook_for(name: str):
            def hook(module: nn.Module, inputs: object, output: object) -> None:
                calls[name] += 1
                tensor = _layer_output(name, calls[name], output)
                records[name] = writer.recorders[name].observe(tensor, state.images, self.pooling)
                if state.stop and len(records) == len(self.layers):
                    raise _StopForward

            return hook

        bar = progress_bar(total=sum(len(batches[b]) for b in mine), unit="img", desc="scan", enabled=progress,
                           smoothing=0.1)
        last_save = time.perf_counter()
        handles = []
        with inspection_mode(net), torch.inference_mode():
            try:
                for name in self.layers:
                    handles.append(get_layer(net, name).register_forward_hook(hook_for(name)))
                for batch, (indices, fitted, _labels, digests) in zip(mine, plain_loader_errors(loader), strict=True):
                    images = indices.to(device, non_blocking=True)
                    inputs = self.model.preprocess.normalize(fitted.to(device, dtype, non_blocking=True))
                    records.clear()
                    calls.update(dict.fromkeys(calls, 0))
                    state.images = images
                    try:
                        net(inputs)
                    except _StopForward:
                        pass
                    _check_all_ran(self.layers, list(records))
                    state.stop = stop_early
                    writer.commit(batch, images, _labels, records, digests)
                    bar.update(len(indices))
                    if time.perf_counter() - last_save >= checkpoint_every:
                        writer.save()
                        last_save = time.perf_counter()
            finally:
                for handle in handles:
                    handle.remove()
                bar.close()


@dataclass
class _Pass:
    """What the layer hooks read during a forward pass: the batch's picture indices, whether to stop early."""

    images: Tensor
    stop: bool = False


class _Writer:
    """This process's committed progress: recorders, done batches and feature parts on disk."""

    def __init__(self, folder: Path, rank: int, layers: list[str], k: int, device: torch.device,
                 config: dict[str, Any]) -> None:
        self.scan_folder, self.config = folder, config
        self.folder = storage.writer_folder(folder, rank)
        path = self.folder / "state.pt"
        self.fingerprints: dict[int, str] = {}
        if path.is_file():
            state = storage.load_state(path)
            self.done, self.parts = list(state["done"]), int(state["parts"])
            self.fingerprints = {int(b): str(f) for b, f in state.get("fingerprints", {}).items()}
            self.recorders = {name: LayerRecorder.from_state(state["layers"][name], device) for name in layers}
        else:
            self.done, self.parts = [], 0
            self.recorders = {name: LayerRecorder(name, k) for name in layers}
        self.pending_batches: list[int] = []
        self.pending_labels: list[Tensor] = []
        self.pending_digests: list[Tensor] = []
        self.pending_fingerprints: dict[int, str] = {}
        self.torn = False  # an interruption inside commit: the state in memory is not to be saved

    def commit(self, batch: int, images: Tensor, labels: Tensor, records: dict[str, BatchRecord],
               digests: Tensor) -> None:
        self.torn = True
        for name, recorder in self.recorders.items():
            recorder.commit(batch, images, records[name])
        self.pending_batches.append(batch)
        self.pending_labels.append(labels.cpu())
        self.pending_digests.append(digests.cpu())
        self.pending_fingerprints[batch] = batch_fingerprint(digests)
        self.torn = False

    def save(self) -> None:
        if not self.pending_batches or self.torn:
            return
        storage.check_still_ours(self.scan_folder, self.config)
        part: dict[str, Any] = {"batches": list(self.pending_batches), "labels": torch.cat(self.pending_labels),
                                "digests": torch.cat(self.pending_digests), "features": {}}
        for name, recorder in self.recorders.items():
            pending = recorder.take_pending()
            assert pending is not None, "every committed batch left features in every recorder"
            images, features = pending
            part["images"], part["features"][name] = images, features
        storage.save_atomically(part, self.folder / f"part_{self.parts:05d}.pt")
        self.parts += 1
        self.done.extend(self.pending_batches)
        self.fingerprints.update(self.pending_fingerprints)
        self.pending_batches, self.pending_labels, self.pending_digests, self.pending_fingerprints = [], [], [], {}
        storage.save_atomically({"done": self.done, "parts": self.parts, "fingerprints": self.fingerprints,
                                 "layers": {n: r.state() for n, r in self.recorders.items()}},
                                self.folder / "state.pt")


def plain_loader_errors(loader: DataLoader):
    """The loader's batches; a picture that cannot be read in a loader process raises its own one-line error."""
    iterator = iter(loader)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except (ValueError, TypeError) as error:
            message = str(error)
            if not message.startswith("Caught "):
                raise
            last = message.strip().splitlines()[-1]
            raise type(error)(last.split(": ", 1)[-1] if ": " in last else last) from error
        yield item


def _batches(count: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def check_batch_size(batch_size: object) -> None:
    """Pictures per batch of a pass over a set: a whole number of at least 1 (bools refused)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")


def loader_workers(pictures: PictureSet, workers: int | None) -> int:
    """Data-loading processes: ``workers`` when given (≥ 0), none for in-memory sets, else up to 4."""
    if workers is not None:
        if workers < 0:
            raise ValueError(f"workers must be 0 or more, got {workers}")
        return workers
    if getattr(pictures, "in_memory", False):
        return 0
    import os

    return min(4, max(0, (os.cpu_count() or 1) - 1))


def _dtype(net: nn.Module) -> torch.dtype:
    parameter = next(net.parameters(), None)
    return parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32


def _layer_output(name: str, calls: int, output: object) -> Tensor:
    """The tensor a scanned layer returned; a ``ValueError`` when it runs twice or returns no tensor."""
    if calls > 1:
        raise ValueError(f"layer {name!r} runs more than once in a forward pass (a module used twice, such as "
                         "torchvision ResNet's shared relu); scan a layer that runs once, e.g. its parent block")
    tensor = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(tensor, Tensor):
        raise ValueError(f"layer {name!r} returns {type(tensor).__name__}, not a tensor")
    return tensor


def _check_all_ran(layers: list[str], ran: list[str]) -> None:
    missing = [name for name in layers if name not in ran]
    if missing:
        raise ValueError(f"layers {missing} did not run in the forward pass (are they used by forward?)")


def batch_fingerprint(digests: Tensor) -> str:
    """One batch's fingerprint from its pictures' digests ``[B,16]``."""
    return hashlib.blake2b(digests.cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()


class FittedWithDigests(Dataset):
    """Item ``i``: ``(index, fitted picture, label, digest of the picture as read)``."""

    def __init__(self, pictures: PictureSet, preprocess: Preprocess) -> None:
        self.fitted = FittedPictures(pictures, preprocess)  # refuses a preprocess without a crop

    def __len__(self) -> int:
        return len(self.fitted)

    def __getitem__(self, index: int) -> tuple[int, Tensor, int, Tensor]:
        pictures, preprocess = self.fitted.pictures, self.fitted.preprocess
        picture = pictures.picture(index)
        return index, preprocess.fit(picture)[0], pictures.label(index), picture_digest(picture)


class PictureDigests(Dataset):
    """Item ``i``: the digest of picture ``i`` as read (no resizing: checking a resume reads, it does not fit)."""

    def __init__(self, pictures: PictureSet) -> None:
        self.pictures = pictures

    def __len__(self) -> int:
        return len(self.pictures)

    def __getitem__(self, index: int) -> Tensor:
        return picture_digest(self.pictures.picture(index))
