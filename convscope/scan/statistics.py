"""Per-channel activation statistics over a whole data set, merged exactly however the work was split.

Counts are integers and maxima are order-free; sums are kept per batch (float64) and
added up in batch order at the end, so a resumed or distributed scan gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import Tensor

COUNTS = ("active_images",)


@dataclass
class ChannelStatistics:
    """Per channel ``[C]``, over all pictures and positions unless the name says otherwise.

    ``active_images``: share of pictures in which the channel is positive somewhere; ``mean``,
    ``std`` and ``max`` of all values; ``image_max_mean``: the mean over pictures of each
    picture's strongest value.
    """

    count_images: int
    positions_per_image: int
    active_images: Tensor
    mean: Tensor
    std: Tensor
    max: Tensor
    image_max_mean: Tensor

    @property
    def channels(self) -> int:
        """Number of channels."""
        return len(self.mean)

    def row(self, channel: int) -> dict[str, float]:
        """One channel's statistics as a dictionary (a table row)."""
        return {"channel": channel, **{name: float(getattr(self, name)[channel]) for name in
                                       ("active_images", "mean", "std", "max", "image_max_mean")}}


def batch_statistics(image_max: Tensor, sums: Tensor, squares: Tensor, positions: int) -> dict[str, Tensor]:
    """What one batch adds, from per-picture ``[B,C]`` maxima, sums and sums of squares."""
    return {"active_images": (image_max > 0).sum(0), "max": image_max.amax(0),
            "sums": torch.stack([sums.double().sum(0), squares.double().sum(0), image_max.double().sum(0)]),
            "images": torch.tensor(image_max.shape[0]), "positions": torch.tensor(positions)}


class StatisticsState(TypedDict):
    """A :class:`StatisticsAccumulator` as saved in a scan's progress (``state.pt``)."""

    counts: dict[str, Tensor]
    max: Tensor | None
    images: int
    positions_per_image: int
    partial_sums: dict[int, Tensor]


class StatisticsAccumulator:
    """Counts, maxima and per-batch sums of one layer (on the activations' device while scanning)."""

    def __init__(self) -> None:
        self.counts: dict[str, Tensor] = {}
        self.maximum: Tensor | None = None
        self.partial_sums: dict[int, Tensor] = {}
        self.images = 0
        self.positions_per_image = 0

    def add(self, batch: int, part: dict[str, Tensor]) -> None:
        if self.maximum is None:
            self.counts = {name: part[name].clone() for name in COUNTS}
            self.maximum = part["max"].clone()
            self.positions_per_image = int(part["positions"])
        else:
            for name in COUNTS:
                self.counts[name] += part[name]
            self.maximum = torch.maximum(self.maximum, part["max"])
        self.partial_sums[batch] = part["sums"]
        self.images += int(part["images"])

    def merge(self, other: StatisticsAccumulator) -> None:
        """Add the batches another accumulator saw (disjoint from these); the result is on the CPU."""
        if other.maximum is None:
            return
        overlap = set(self.partial_sums) & set(other.partial_sums)
        if overlap:
            raise ValueError(f"batches {sorted(overlap)[:5]} were counted twice: the scan folder is inconsistent")
        self.partial_sums = {b: s.cpu() for b, s in (self.partial_sums | other.partial_sums).items()}
        if self.maximum is None:
            self.counts = {name: other.counts[name].cpu() for name in COUNTS}
            self.maximum = other.maximum.cpu()
            self.positions_per_image = other.positions_per_image
        else:
            self.counts = {name: self.counts[name].cpu() + other.counts[name].cpu() for name in COUNTS}
            self.maximum = torch.maximum(self.maximum.cpu(), other.maximum.cpu())
        self.images += other.images

    def state(self) -> StatisticsState:
        return {"counts": {n: c.cpu() for n, c in self.counts.items()},
                "max": None if self.maximum is None else self.maximum.cpu(), "images": self.images,
                "positions_per_image": self.positions_per_image,
                "partial_sums": {b: s.cpu() for b, s in self.partial_sums.items()}}

    @classmethod
    def from_state(cls, state: StatisticsState, device: torch.device | str = "cpu") -> StatisticsAccumulator:
        accumulator = cls()
        accumulator.counts = {n: c.to(device) for n, c in state["counts"].items()}
        accumulator.maximum = None if state["max"] is None else state["max"].to(device)
        accumulator.images = int(state["images"])
        accumulator.positions_per_image = int(state["positions_per_image"])
        accumulator.partial_sums = {int(b): s.to(device) for b, s in state["partial_sums"].items()}
        return accumulator

    def result(self) -> ChannelStatistics:
        if self.maximum is None:
            raise ValueError("no pictures were scanned")
        sums = torch.stack([self.partial_sums[b].cpu() for b in sorted(self.partial_sums)]).sum(0)
        values = self.images * self.positions_per_image
        mean = sums[0] / values
        variance = (sums[1] / values - mean ** 2).clamp_min(0)
        return ChannelStatistics(
            count_images=self.images, positions_per_image=self.positions_per_image,
            active_images=self.counts["active_images"].cpu().double() / self.images, mean=mean, std=variance.sqrt(),
            max=self.maximum.cpu().double(), image_max_mean=sums[2] / self.images)
