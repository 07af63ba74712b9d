"""Numbered picture sets: what a data set scan reads, and how a scan finds its pictures again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from convscope.models.preprocessing import Preprocess

UNLABELLED = -1


class PictureSet(Dataset):
    """Pictures numbered ``0 … N-1``, each a float ``[C,H,W]`` in [0, 1], with optional labels.

    Subclasses define ``__len__``, :meth:`picture`, :meth:`label`, :meth:`name` and
    :meth:`spec` (a JSON-able description from which :func:`convscope.data.dataset_from_spec`
    opens the same set again, so that a scan saved to disk can show its pictures).
    Item ``i`` is ``(picture, label)``.
    """

    class_names: list[str] | None = None
    in_memory = False  # True when reading a picture costs no file access (no loader processes needed)

    def __len__(self) -> int:
        raise NotImplementedError

    def picture(self, index: int) -> Tensor:
        """Picture ``index`` as ``[C,H,W]`` in [0, 1], any size."""
        raise NotImplementedError

    def label(self, index: int) -> int:
        """The class of picture ``index`` (-1: unlabelled)."""
        return UNLABELLED

    def labels(self) -> Tensor:
        """All labels ``[N]`` (``-1`` where a picture has none)."""
        return torch.tensor([self.label(i) for i in range(len(self))], dtype=torch.long)

    def name(self, index: int) -> str:
        """A short human-readable name of picture ``index``."""
        return f"#{index}"

    def spec(self) -> dict[str, Any]:
        """A JSON-able description that identifies the set (a scan stores it to refuse mixing sets)."""
        raise NotImplementedError

    def source_files(self, index: int) -> list[Path] | None:
        """The files picture ``index`` is read from, so that a change can be seen from their sizes and times;
        ``None`` when the set cannot tell (a change is then found only by reading the picture)."""
        return None

    def describe(self) -> str:
        """One line: what the set is and how many pictures it holds."""
        classes = f", {len(self.class_names)} classes" if self.class_names else ""
        return f"{self.spec().get('kind', type(self).__name__)}: {len(self)} pictures{classes}"

    def check_index(self, index: int) -> int:
        """``index`` if it is an int within the set; a one-line TypeError/ValueError otherwise."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"a picture index is an int, got {type(index).__name__}")
        if not 0 <= index < len(self):
            raise ValueError(f"picture index {index} is out of range: this set holds {len(self)} pictures "
                             f"(0 … {len(self) - 1})")
        return index

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.picture(index), self.label(index)


class FirstPictures(PictureSet):
    """The first ``count`` pictures of another set (a quick look at a large set)."""

    def __init__(self, pictures: PictureSet, count: int) -> None:
        if count < 1:
            raise ValueError(f"a subset needs at least one picture, got limit={count}")
        self.source = pictures
        self.count = min(count, len(pictures))
        self.class_names = pictures.class_names
        self.in_memory = pictures.in_memory

    def __len__(self) -> int:
        return self.count

    def picture(self, index: int) -> Tensor:
        """Picture ``index`` of the underlying set."""
        return self.source.picture(self.check_index(index))

    def label(self, index: int) -> int:
        """The label of picture ``index`` of the underlying set."""
        return self.source.label(self.check_index(index))

    def labels(self) -> Tensor:
        """The labels of the first ``count`` pictures."""
        return self.source.labels()[: self.count]

    def name(self, index: int) -> str:
        """The name of picture ``index`` in the underlying set."""
        return self.source.name(self.check_index(index))

    def source_files(self, index: int) -> list[Path] | None:
        """The files picture ``index`` of the underlying set is read from."""
        return self.source.source_files(self.check_index(index))

    def spec(self) -> dict[str, Any]:
        """The underlying set's spec with the limit."""
        return {**self.source.spec(), "limit": self.count}


class FittedPictures(Dataset):
    """A picture set as the model sees it: item ``i`` is ``(index, fitted picture, label)``.

    The picture is resized and cropped by ``preprocess`` (values still in [0, 1]); a
    scan normalises whole batches on the device.
    """

    def __init__(self, pictures: PictureSet, preprocess: Preprocess) -> None:
        if preprocess.crop is None:
            raise ValueError("scanning needs pictures of one size: give the model's Preprocess a crop size "
                             "(e.g. Preprocess(resize=256, crop=224))")
        self.pictures = pictures
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.pictures)

    def __getitem__(self, index: int) -> tuple[int, Tensor, int]:
        return index, self.preprocess.fit(self.pictures.picture(index))[0], self.pictures.label(index)
