"""Pictures already in memory: a tensor ``[N,C,H,W]`` (or a list of pictures) with optional labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from convscope.data.pictures import UNLABELLED, PictureSet


class TensorPictures(PictureSet):
    """Pictures ``[N,C,H,W]`` (or a list of ``[C,H,W]``) in [0, 1], labels ``[N]`` optional.

    Such a set cannot be reopened from a saved scan's description: pass it again
    (``ScanResult.load(folder, pictures=…)``) to see its pictures.
    """

    in_memory = True

    def __init__(self, pictures: Tensor | Sequence[Tensor], labels: Tensor | Sequence[int] | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        if isinstance(pictures, Tensor) and pictures.dim() != 4:
            raise ValueError(f"pictures are [N,C,H,W], got {tuple(pictures.shape)}")
        self.items = list(pictures)
        if not self.items:
            raise ValueError("TensorPictures needs at least one picture")
        for item in self.items:
            if not isinstance(item, Tensor) or item.dim() != 3:
                raise ValueError("each picture is a tensor [C,H,W] in [0, 1]")
        if labels is None:
            self._labels = torch.full((len(self.items),), UNLABELLED, dtype=torch.long)
        else:
            self._labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
            if len(self._labels) != len(self.items):
                raise ValueError(f"{len(self._labels)} labels for {len(self.items)} pictures")
        self.class_names = list(class_names) if class_names is not None else None

    def __len__(self) -> int:
        return len(self.items)

    def picture(self, index: int) -> Tensor:
        """Picture ``index`` as given."""
        return self.items[self.check_index(index)]

    def label(self, index: int) -> int:
        """The label of picture ``index`` (-1 without labels)."""
        return int(self._labels[self.check_index(index)])

    def labels(self) -> Tensor:
        """Every picture's label ``[N]`` (a copy)."""
        return self._labels.clone()

    def spec(self) -> dict[str, Any]:
        """What identifies this set (its size), as stored with a scan."""
        return {"kind": "tensors", "count": len(self)}
