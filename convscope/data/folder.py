"""A folder of image files: one sub-folder per class (labelled) or all files together (unlabelled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from convscope.data.pictures import UNLABELLED, PictureSet
from convscope.images import expand_sources, load_image


class ImageFolder(PictureSet):
    """Every image under ``root`` (recursively, sorted by path).

    When every image lies in a sub-folder, the first-level sub-folder names are the
    classes (sorted), as in ``torchvision.datasets.ImageFolder``; otherwise there are no labels.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"{str(root)!r} is not a folder: give a folder of images, 'fashion-mnist' or "
                             "'samples'")
        self.files = [Path(p) for p in expand_sources(self.root)]
        parts = [p.relative_to(self.root).parts for p in self.files]
        if all(len(part) > 1 for part in parts):
            self.class_names = sorted({part[0] for part in parts})
            index = {name: i for i, name in enumerate(self.class_names)}
            self._labels = [index[part[0]] for part in parts]
        else:
            self.class_names = None
            self._labels = [UNLABELLED] * len(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def picture(self, index: int) -> Tensor:
        """The file read by :func:`convscope.load_image`: ``[3,H,W]`` in [0, 1]."""
        return load_image(self.files[self.check_index(index)])

    def label(self, index: int) -> int:
        """The class (index of the sub-folder, sorted) of picture ``index``; -1 in a flat folder."""
        return self._labels[self.check_index(index)]

    def name(self, index: int) -> str:
        """The file's path relative to the folder."""
        return str(self.files[self.check_index(index)].relative_to(self.root))

    def source_files(self, index: int) -> list[Path]:
        """The image file of picture ``index``."""
        return [self.files[self.check_index(index)]]

    def spec(self) -> dict[str, Any]:
        """What identifies this set (the folder), as stored with a scan."""
        return {"kind": "folder", "root": str(self.root)}
