"""Fashion-MNIST: 70 000 labelled 28×28 greyscale pictures of clothes in ten classes.

Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms", 2017 — https://arxiv.org/abs/1708.07747. Read from the IDX files that
Debian's ``dataset-fashion-mnist`` package installs, or from any folder holding them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from convscope.data.idx import read_idx
from convscope.data.pictures import PictureSet

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
ROOT_VARIABLE = "CONVSCOPE_FASHION_MNIST"
SPLITS = ("train", "test", "all")
_PREFIX = {"train": "train", "test": "t10k"}
INSTALL_HINT = ("install it with `apt-get install dataset-fashion-mnist` (files under "
                f"{DEBIAN_FOLDER}), or pass the folder holding train-images-idx3-ubyte(.gz) and the other "
                f"IDX files (or set {ROOT_VARIABLE})")


def fashion_mnist_root(root: str | Path | None = None) -> Path:
    """The folder with the IDX files: ``root``, else ``$CONVSCOPE_FASHION_MNIST``, else Debian's."""
    folder = Path(root or os.environ.get(ROOT_VARIABLE) or DEBIAN_FOLDER)
    if not folder.is_dir():
        raise ValueError(f"no Fashion-MNIST folder at {str(folder)!r}: {INSTALL_HINT}")
    for split in ("train", "test"):
        for kind in ("images", "labels"):
            _idx_file(folder, split, kind)
    return folder


def has_fashion_mnist(root: str | Path | None = None) -> bool:
    """Whether the Fashion-MNIST files can be found (see :func:`fashion_mnist_root`)."""
    try:
        fashion_mnist_root(root)
    except ValueError:
        return False
    return True


def looks_like_fashion_mnist(folder: str | Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and any(folder.glob("*-images-idx3-ubyte*"))


def _idx_file(folder: Path, split: str, kind: str) -> Path:
    stem = f"{_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem, f"{stem}.gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise ValueError(f"{str(folder)!r} lacks {stem}(.gz): {INSTALL_HINT}")


class FashionMNIST(PictureSet):
    """Fashion-MNIST pictures ``[1,28,28]`` in [0, 1] with labels 0–9.

    ``split``: ``'train'`` (60 000), ``'test'`` (10 000) or ``'all'`` (train then test).
    """

    class_names = FASHION_CLASSES
    in_memory = True

    def __init__(self, root: str | Path | None = None, split: str = "test") -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown Fashion-MNIST split {split!r}: use one of {', '.join(SPLITS)}")
        self.root = fashion_mnist_root(root)
        self.split = split
        parts = ("train", "test") if split == "all" else (split,)
        images = [read_idx(_idx_file(self.root, p, "images")) for p in parts]
        labels = [read_idx(_idx_file(self.root, p, "labels")) for p in parts]
        for image, label in zip(images, labels, strict=True):
            if image.ndim != 3 or label.ndim != 1 or len(image) != len(label):
                raise ValueError(f"the Fashion-MNIST files in {str(self.root)!r} do not fit together: "
                                 f"images {image.shape}, labels {label.shape}")
        self.images = torch.from_numpy(np.concatenate(images)) if len(images) > 1 else torch.from_numpy(
            images[0].copy())
        self.label_tensor = torch.from_numpy(np.concatenate(labels).astype(np.int64))
        outside = self.label_tensor >= len(FASHION_CLASSES)
        if bool(outside.any()):
            first = int(outside.nonzero()[0, 0])
            value = int(self.label_tensor[first])
            raise ValueError(f"the Fashion-MNIST labels in {str(self.root)!r} hold {int(outside.sum())} values outside "
                             f"0–{len(FASHION_CLASSES) - 1} (picture {first} is labelled {value}): the labels file is "
                             "damaged or belongs to another data set")
        self.part_sizes = [len(label) for label in labels]
        self._sources = [[_idx_file(self.root, p, kind) for kind in ("images", "labels")] for p in parts]

    def __len__(self) -> int:
        return len(self.label_tensor)

    def picture(self, index: int) -> Tensor:
        """Picture ``index`` as ``[1,28,28]`` in [0, 1]."""
        return self.images[self.check_index(index)][None].float() / 255

    def label(self, index: int) -> int:
        """The class (0–9) of picture ``index``."""
        return int(self.label_tensor[self.check_index(index)])

    def labels(self) -> Tensor:
        """Every picture's class ``[N]`` (a copy)."""
        return self.label_tensor.clone()

    def name(self, index: int) -> str:
        """The split, the picture's number in it and its class name."""
        split, number = self.split, self.check_index(index)
        if split == "all":
            train = self.part_sizes[0]
            split, number = ("train", number) if number < train else ("test", number - train)
        return f"{split} #{number} ({FASHION_CLASSES[self.label(index)]})"

    def source_files(self, index: int) -> list[Path]:
        """The IDX files (pictures and labels) of the split picture ``index`` belongs to."""
        part = 0 if self.check_index(index) < self.part_sizes[0] else 1
        return self._sources[part]

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All pictures ``[N,1,28,28]`` in [0, 1] and labels ``[N]`` at once (for training)."""
        return self.images[:, None].float() / 255, self.label_tensor.clone()

    def spec(self) -> dict[str, Any]:
        """What identifies this set (folder and split), as stored with a scan."""
        return {"kind": "fashion-mnist", "root": str(self.root), "split": self.split}
