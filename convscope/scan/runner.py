"""One streaming pass over a picture set, recording chosen layers; resumable and splittable over processes.

Pictures go through the network in fixed batches (batch ``b`` holds pictures
``b·B … (b+1)·B-1``). Each batch's records are computed on the device inside the layer
hooks and committed only when the whole batch is done; the committed state is saved every
``checkpoint_every`` seconds. A rerun with the same settings skips the saved batches; under
``torchrun`` each process takes every n-th remaining batch. Because batches never change
and ties are ordered by image index, every split of the work gives the same results.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from convscope.data.pictures import FittedPictures, PictureSet
from convscope.hooks import inspection_mode
from convscope.models.layers import get_layer, layer_name
from convscope.models.model import Model, as_model
from convscope.progress import progress_bar
from convscope.scan import storage
from convscope.scan.distributed import Workers, join_workers
from convscope.scan.finalize import finalize
from convscope.scan.receptive_field import receptive_fields
from convscope.scan.recorder import POOLINGS, BatchRecord, LayerRecorder
from convscope.scan.result import ScanResult


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

    def run(self, pictures: PictureSet, out: str | Path, *, batch_size: int = 64, workers: int | None = None,
            progress: bool = True, checkpoint_every: float = 60.0, overwrite: bool = False,
            stop_early: bool = True, model_source: dict[str, Any] | None = None) -> ScanResult:
        """Scan ``pictures`` into the folder ``out`` and return the result (also when it was already there).

        ``workers``: data-loading processes (default: none for in-memory sets, else up to 4).
        ``model_source`` (``{'name', 'weights'}``) lets later commands reload the model.
        """
        if not isinstance(pictures, PictureSet):
            raise TypeError(f"scan a convscope.data.PictureSet (ImageFolder, FashionMNIST, SampleCrops, "
                            f"TensorPictures), got {type(pictures).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        folder = Path(out)
        team = join_workers()
        config = self._config(pictures, batch_size, model_source)
        if self._prepare_folder(folder, config, overwrite, team):
            return ScanResult.load(folder, pictures=pictures)
        states = [storage.load(p) for p in sorted((folder / storage.PROGRESS).glob("rank*/state.pt"))]
        done = {b for state in states for b in state["done"]}
        batches = _batches(len(pictures), batch_size)
        mine = [b for b in range(len(batches)) if b not in done][team.rank::team.world]
        team.barrier()  # everyone has read the saved progress before anyone writes
        writer = _Writer(folder, team.rank, self.layers, self.k, self.model.device)
        failed: BaseException | None = None
        try:
            self._scan(pictures, batches, mine, writer, batch_size, workers, progress and team.main,
                       checkpoint_every, stop_early)
        except BaseException as error:  # saved progress stays valid; re-raised once all processes agree
            failed = error
        writer.save()
        if not team.all_ok(failed is None):
            if failed is not None:
                raise failed
            raise RuntimeError("another scanning process failed; rerun the same command to resume")
        if team.main:
            finalize(folder, self._fields())
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

    def _prepare_folder(self, folder: Path, config: dict[str, Any], overwrite: bool, team: Workers) -> bool:
        """Create or check the folder; True when it already holds this scan, complete."""
        if team.main:
            if overwrite:
                storage.clear(folder)
            if (folder / storage.CONFIG).is_file():
                existing = storage.read_config(folder)
                try:
                    storage.check_same_scan(existing, config, folder)
                except ValueError:
                    team.all_ok(False)
                    raise
            else:
                storage.write_config(folder, config)
        if not team.all_ok(True):
            raise RuntimeError(f"{folder} holds a different scan (see the first process's error)")
        return bool(storage.read_config(folder).get("complete"))

    def _fields(self) -> dict[str, dict]:
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
        loader = DataLoader(FittedPictures(pictures, self.model.preprocess),
                            batch_sampler=[list(batches[b]) for b in mine],
                            num_workers=_workers(pictures, workers), pin_memory=device.type == "cuda")
        records: dict[str, BatchRecord] = {}
        calls = {name: 0 for name in self.layers}
        state = {"images": None, "stop": False}

        def hook_for(name: str):
            def hook(module: nn.Module, inputs: object, output: object) -> None:
                calls[name] += 1
                if calls[name] > 1:
                    raise ValueError(f"layer {name!r} runs more than once in a forward pass (a module used twice, "
                                     "such as torchvision ResNet's shared relu); scan a layer that runs once, "
                                     "e.g. its parent block")
                tensor = output[0] if isinstance(output, (tuple, list)) else output
                if not isinstance(tensor, Tensor):
                    raise ValueError(f"layer {name!r} returns {type(tensor).__name__}, not a tensor")
                records[name] = writer.recorders[name].observe(tensor, state["images"], self.pooling)
                if state["stop"] and len(records) == len(self.layers):
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
                for batch, (indices, fitted, _labels) in zip(mine, _plain_errors(loader), strict=True):
                    images = indices.to(device, non_blocking=True)
                    inputs = self.model.preprocess.normalize(fitted.to(device, dtype, non_blocking=True))
                    records.clear()
                    calls.update(dict.fromkeys(calls, 0))
                    state["images"] = images
                    try:
                        net(inputs)
                    except _StopForward:
                        pass
                    missing = [name for name in self.layers if name not in records]
                    if missing:
                        raise ValueError(f"layers {missing} did not run in the forward pass (are they used by "
                                         "forward?)")
                    state["stop"] = stop_early
                    writer.commit(batch, images, _labels, records)
                    bar.update(len(indices))
                    if time.perf_counter() - last_save >= checkpoint_every:
                        writer.save()
                        last_save = time.perf_counter()
            finally:
                for handle in handles:
                    handle.remove()
                bar.close()


class _Writer:
    """This process's committed progress: recorders, done batches and feature parts on disk."""

    def __init__(self, folder: Path, rank: int, layers: list[str], k: int, device: torch.device) -> None:
        self.folder = storage.writer_folder(folder, rank)
        path = self.folder / "state.pt"
        if path.is_file():
            state = storage.load(path)
            self.done, self.parts = list(state["done"]), int(state["parts"])
            self.recorders = {name: LayerRecorder.from_state(state["layers"][name], device) for name in layers}
        else:
            self.done, self.parts = [], 0
            self.recorders = {name: LayerRecorder(name, k) for name in layers}
        self.pending_batches: list[int] = []
        self.pending_labels: list[Tensor] = []
        self.torn = False  # an interruption inside commit: the state in memory is not to be saved

    def commit(self, batch: int, images: Tensor, labels: Tensor, records: dict[str, BatchRecord]) -> None:
        self.torn = True
        for name, recorder in self.recorders.items():
            recorder.commit(batch, images, records[name])
        self.pending_batches.append(batch)
        self.pending_labels.append(labels.cpu())
        self.torn = False

    def save(self) -> None:
        if not self.pending_batches or self.torn:
            return
        part: dict[str, Any] = {"batches": list(self.pending_batches), "labels": torch.cat(self.pending_labels),
                                "features": {}}
        for name, recorder in self.recorders.items():
            images, features = recorder.take_pending()
            part["images"], part["features"][name] = images, features
        storage.save_atomically(part, self.folder / f"part_{self.parts:05d}.pt")
        self.parts += 1
        self.done.extend(self.pending_batches)
        self.pending_batches, self.pending_labels = [], []
        storage.save_atomically({"done": self.done, "parts": self.parts,
                                 "layers": {n: r.state() for n, r in self.recorders.items()}},
                                self.folder / "state.pt")


def _plain_errors(loader: DataLoader):
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


def _workers(pictures: PictureSet, workers: int | None) -> int:
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
