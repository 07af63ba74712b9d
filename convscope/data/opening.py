"""Naming a picture set in one string (for the command line) and reopening a saved one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convscope.data.crops import SampleCrops
from convscope.data.fashion_mnist import SPLITS, FashionMNIST, looks_like_fashion_mnist
from convscope.data.folder import ImageFolder
from convscope.data.pictures import FirstPictures, PictureSet

DATA_HELP = ("a folder of images (class sub-folders or flat), 'fashion-mnist' (all 70 000; "
             "'fashion-mnist:train' / ':test'), a folder of Fashion-MNIST IDX files (optionally ':test'), "
             "or 'samples' (crops of the bundled photos)")


def open_dataset(text: str | Path, *, limit: int | None = None) -> PictureSet:
    """The picture set named by ``text`` (see ``DATA_HELP``), its first ``limit`` pictures if given."""
    text = str(text)
    named = _named_set(text)
    if named is not None:
        kind, root, split = named
        pictures: PictureSet = SampleCrops() if kind == "samples" else FashionMNIST(root, split=split)
    elif Path(text).is_dir():
        pictures = ImageFolder(text)
    else:
        raise ValueError(f"no picture set {text!r}: give {DATA_HELP}")
    return FirstPictures(pictures, limit) if limit is not None else pictures


def names_a_picture_set(text: str | Path) -> bool:
    """Whether ``text`` names a set by itself (``fashion-mnist[:split]``, ``samples``, a folder of Fashion-MNIST
    IDX files) rather than pictures to open one by one (files, folders of photos, ``sample:NAME``)."""
    return _named_set(str(text)) is not None


def _named_set(text: str) -> tuple[str, str | None, str] | None:
    """What ``text`` names besides a folder of pictures: ``('fashion-mnist', folder or None, split)`` or
    ``('samples', None, '')``; None otherwise."""
    name, _, split = text.partition(":")
    if name in ("fashion-mnist", "fashion_mnist"):
        return "fashion-mnist", None, split or "all"
    if text in ("samples", "sample-crops"):
        return "samples", None, ""
    folder, _, split = text.rpartition(":")
    if folder and split in SPLITS and looks_like_fashion_mnist(folder):
        return "fashion-mnist", folder, split
    if looks_like_fashion_mnist(text):
        return "fashion-mnist", text, "all"
    return None


def dataset_from_spec(spec: dict[str, Any]) -> PictureSet:
    """Reopen the set that :meth:`PictureSet.spec` described."""
    kind = spec.get("kind")
    if kind == "fashion-mnist":
        pictures: PictureSet = FashionMNIST(spec["root"], split=spec["split"])
    elif kind == "folder":
        pictures = ImageFolder(spec["root"])
    elif kind == "sample-crops":
        pictures = SampleCrops(spec["photos"], spec["scales"], spec.get("overlap", 0.5))
    else:
        raise ValueError(f"cannot reopen a picture set of kind {kind!r}; pass the pictures themselves")
    return FirstPictures(pictures, spec["limit"]) if "limit" in spec else pictures
