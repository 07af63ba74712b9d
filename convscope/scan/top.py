"""A running top-k per channel with a fixed order for ties, so that any split of the work merges exactly."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TopActivations:
    """Per channel the ``k`` strongest images, best first: ``values``, ``images`` and ``positions`` ``[C,k]``.

    ``positions`` is the flat index ``y·W + x`` of the image's strongest position in the
    channel's map (each image counted once per channel, at its strongest position). Ties are
    ordered by image index; empty slots (fewer than ``k`` images seen) hold image ``-1``.
    """

    values: Tensor
    images: Tensor
    positions: Tensor

    @classmethod
    def empty(cls, channels: int, k: int, device: torch.device | str = "cpu") -> TopActivations:
        """A table for ``channels`` × ``k`` with nothing recorded yet (values −∞, pictures −1)."""
        from convscope.memory import check_fits

        # 20 bytes an entry (value, picture, position), about three times over while a batch is merged in
        check_fits(60 * channels * k, f"a top-{k} table of {channels} channels", "give a smaller -k (k)", device)
        return cls(torch.full((channels, k), -torch.inf, device=device),
                   torch.full((channels, k), -1, dtype=torch.long, device=device),
                   torch.zeros((channels, k), dtype=torch.long, device=device))

    @property
    def k(self) -> int:
        """Entries kept per channel."""
        return self.values.shape[1]

    def merged(self, other: TopActivations) -> TopActivations:
        """The top ``k`` of both (``k`` of ``self``), ties broken by the lower image index."""
        device = self.values.device
        values = torch.cat([self.values, other.values.to(device)], dim=1)
        images = torch.cat([self.images, other.images.to(device)], dim=1)
        positions = torch.cat([self.positions, other.positions.to(device)], dim=1)
        order = _best_first(values, images, self.k)
        return TopActivations(values.gather(1, order), images.gather(1, order), positions.gather(1, order))

    def with_batch(self, maps: Tensor, image_max: Tensor, images: Tensor) -> TopActivations:
        """After one batch: ``maps`` ``[B,C,P]``, ``image_max`` ``[B,C]`` (their maxima), ``images`` ``[B]``.

        Each image enters at its strongest position (the first, when several are equal);
        positions are looked up only for the entries that made it into the top ``k``.
        """
        channels, batch = image_max.shape[1], image_max.shape[0]
        device = self.values.device
        values = torch.cat([self.values, image_max.T], dim=1)
        numbers = torch.cat([self.images, images.view(1, -1).expand(channels, -1)], dim=1)
        slots = torch.cat([torch.full_like(self.images, -1),
                           torch.arange(batch, device=device).view(1, -1).expand(channels, -1)], dim=1)
        order = _best_first(values, numbers, self.k)
        values, numbers, slots = values.gather(1, order), numbers.gather(1, order), slots.gather(1, order)
        rows = torch.arange(channels, device=device).view(-1, 1).expand(-1, self.k)
        fresh = maps[slots.clamp_min(0), rows].argmax(dim=-1)  # [C,k,P] → [C,k]
        old = self.positions.gather(1, order.clamp_max(self.k - 1))
        return TopActivations(values, numbers, torch.where(slots >= 0, fresh, old))

    def to(self, device: torch.device | str) -> TopActivations:
        """A copy on ``device``."""
        return TopActivations(self.values.to(device), self.images.to(device), self.positions.to(device))

    def filled(self) -> TopActivations:
        """Without trailing empty slots (when fewer than ``k`` images were seen)."""
        seen = int((self.images >= 0).sum(1).min()) if self.images.numel() else 0
        return TopActivations(self.values[:, :seen], self.images[:, :seen], self.positions[:, :seen])

    def state(self) -> dict[str, Tensor]:
        """The tensors on the CPU, for saving."""
        return {"values": self.values.cpu(), "images": self.images.cpu(), "positions": self.positions.cpu()}

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> TopActivations:
        """The table from :meth:`state`'s tensors."""
        return cls(state["values"], state["images"], state["positions"])


def _best_first(values: Tensor, images: Tensor, k: int) -> Tensor:
    """The column order of each row's ``k`` best: highest value first, equal values by lower image index,
    empty slots (image -1) last — one ``topk`` over an exact integer key (value bits, then index)."""
    return order_key(values, images).topk(k, dim=1).indices


def order_key(values: Tensor, images: Tensor) -> Tensor:
    """int64 keys that sort like (value, -image): float32 bits made monotonic in the high half, the image
    index (reversed, so that lower indices win ties) in the low half; images must be below 2³² − 2."""
    bits = (values.float() + 0.0).view(torch.int32).long()  # + 0.0 turns -0.0 into +0.0
    monotonic = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    tie_break = torch.where(images < 0, 0, (1 << 32) - 2 - images)
    return (monotonic << 32) + tie_break
