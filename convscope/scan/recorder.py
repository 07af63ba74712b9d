"""What a scan keeps of one layer: pooled features per image, the running top-k and channel statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import torch
from torch import Tensor

from convscope.scan.statistics import StatisticsAccumulator, StatisticsState, batch_statistics
from convscope.scan.top import TopActivations

POOLINGS = ("mean", "max", "flatten")


def as_maps(activation: Tensor, layer: str) -> Tensor:
    """A layer output as ``[B,C,P]`` (P positions): ``[B,C,H,W]`` or ``[B,C]`` (one position)."""
    if activation.dim() == 4:
        return activation.flatten(2)
    if activation.dim() == 2:
        return activation[:, :, None]
    raise ValueError(f"layer {layer!r} gives outputs shaped {tuple(activation.shape)}; a scan records "
                     "[B,C,H,W] maps or [B,C] vectors — pick a convolutional or linear layer")


@dataclass
class BatchRecord:
    """One batch's contribution to one layer, computed on the device; committed when the batch is done."""

    features: Tensor
    top: TopActivations
    statistics: dict[str, Tensor]
    shape: tuple[int, ...]


class RecorderState(TypedDict):
    """A :class:`LayerRecorder` as saved in a scan's progress (``state.pt``)."""

    layer: str
    k: int
    shape: Sequence[int] | None
    top: dict[str, Tensor] | None
    statistics: StatisticsState


@dataclass
class LayerRecorder:
    """Accumulates :class:`BatchRecord` s of one layer; features wait on the device until saved."""

    layer: str
    k: int
    shape: tuple[int, ...] | None = None
    top: TopActivations | None = None
    statistics: StatisticsAccumulator = field(default_factory=StatisticsAccumulator)
    pending_images: list[Tensor] = field(default_factory=list)
    pending_features: list[Tensor] = field(default_factory=list)

    def observe(self, activation: Tensor, images: Tensor, pooling: str) -> BatchRecord:
        """What the batch ``activation`` (pictures ``images`` ``[B]``) adds; nothing is changed yet."""
        maps = as_maps(activation.detach(), self.layer).float()
        shape = tuple(activation.shape[1:])
        if self.shape is not None and self.shape != shape:
            raise ValueError(f"layer {self.layer!r} gave outputs shaped {shape} after {self.shape}: "
                             "a scan needs pictures of one size")
        image_max, sums = maps.amax(dim=2), maps.sum(dim=2)
        squares = torch.linalg.vector_norm(maps, dim=2).square()
        top = self.top if self.top is not None else TopActivations.empty(maps.shape[1], self.k, maps.device)
        if pooling == "mean":
            features = sums / maps.shape[2]
        elif pooling == "max":
            features = image_max
        else:
            features = maps.flatten(1)
        return BatchRecord(features, top.with_batch(maps, image_max, images),
                           batch_statistics(image_max, sums, squares, maps.shape[2]), shape)

    def commit(self, batch: int, images: Tensor, record: BatchRecord) -> None:
        self.shape = record.shape
        self.top = record.top
        self.statistics.add(batch, record.statistics)
        self.pending_images.append(images)
        self.pending_features.append(record.features)

    def take_pending(self) -> tuple[Tensor, Tensor] | None:
        """Image indices ``[n]`` and feature rows ``[n,D]`` not yet saved, moved to the CPU."""
        if not self.pending_images:
            return None
        images, features = torch.cat(self.pending_images).cpu(), torch.cat(self.pending_features).cpu()
        self.pending_images, self.pending_features = [], []
        return images, features

    def state(self) -> RecorderState:
        return {"layer": self.layer, "k": self.k, "shape": self.shape,
                "top": None if self.top is None else self.top.state(), "statistics": self.statistics.state()}

    @classmethod
    def from_state(cls, state: RecorderState, device: torch.device | str = "cpu") -> LayerRecorder:
        top = None if state["top"] is None else TopActivations.from_state(state["top"]).to(device)
        shape = None if state["shape"] is None else tuple(state["shape"])
        return cls(state["layer"], int(state["k"]), shape, top,
                   StatisticsAccumulator.from_state(state["statistics"], device))
