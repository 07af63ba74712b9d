"""Any ``torch.utils.data.Dataset`` as a picture set: items ``(image, label)`` or ``image``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from convscope.data.pictures import UNLABELLED, PictureSet


class DatasetPictures(PictureSet):
    """A torch ``Dataset`` whose items are ``(image, label)``, ``image``, or ``(image, label, …)``.

    ``image`` is a ``[C,H,W]`` tensor in [0, 1] (float) or 0…255 (``uint8``), or a PIL image;
    ``label`` an int (or a one-element tensor). convscope applies the model's own resize, crop and
    normalisation, so a dataset whose transform already normalises (values outside [0, 1]) is
    refused with that reason. Class names come from ``class_names`` or the dataset's ``classes``
    (torchvision's convention). Like :class:`TensorPictures`, it cannot be reopened from a saved
    scan's description: pass it again (``ScanResult.load(folder, pictures=…)``).
    """

    in_memory = True  # read in the scanning process: a user's dataset need not survive pickling to loader workers

    def __init__(self, dataset: Dataset, class_names: list[str] | None = None) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"a picture set needs a map-style Dataset (with __len__ and __getitem__), got "
                            f"{type(dataset).__name__}; iterable datasets cannot be numbered")
        self.dataset = dataset
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ValueError(f"the dataset {type(dataset).__name__} is empty")
        found = getattr(dataset, "classes", None)
        names = class_names if class_names is not None else found
        self.class_names = list(names) if isinstance(names, list | tuple) and all(
            isinstance(n, str) for n in names) else None
        self.picture(0)  # the first item says at once whether the others can be read

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _item(self, index: int) -> tuple[object, object]:
        item = self.dataset[self.check_index(index)]
        if isinstance(item, tuple | list):
            if not item:
                raise ValueError(f"item {index} of {type(self.dataset).__name__} is empty")
            return item[0], item[1] if len(item) > 1 else None
        return item, None

    def picture(self, index: int) -> Tensor:
        """The dataset item's picture as ``[C,H,W]`` in [0, 1]."""
        return _as_picture(self._item(index)[0], index, type(self.dataset).__name__)

    def label(self, index: int) -> int:
        """The dataset item's label as an int (-1 when it has none)."""
        label = self._item(index)[1]
        if label is None:
            return UNLABELLED
        if isinstance(label, Tensor) and label.numel() == 1:
            label = label.item()
        if isinstance(label, bool) or not isinstance(label, int):
            raise ValueError(f"item {index}'s label is {type(label).__name__}: a picture set's label is one class "
                             "index (int); wrap the dataset to return (image, int)")
        return label

    def spec(self) -> dict[str, Any]:
        """What identifies this set (the dataset's type and size), as stored with a scan."""
        return {"kind": "dataset", "type": type(self.dataset).__name__, "count": len(self)}


def _as_picture(item: object, index: int, owner: str) -> Tensor:
    image = item if isinstance(item, Tensor) else _from_pil(item, index, owner)
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(f"item {index} of {owner} has shape {list(image.shape)}; a picture is [C,H,W] with 1, 3 "
                         "or 4 channels")
    if image.dtype == torch.uint8:
        return image.float() / 255
    if not image.is_floating_point():
        raise TypeError(f"item {index} of {owner} is {image.dtype}; use float in [0, 1] or uint8")
    low, high = float(image.min()), float(image.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"item {index} of {owner} has values in [{low:.3g}, {high:.3g}], not [0, 1]: convscope "
                         "applies the model's own normalisation, so leave Normalize out of the dataset's transform")
    return image.float().clamp(0, 1)


def _from_pil(item: object, index: int, owner: str) -> Tensor:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        pass
    else:
        if isinstance(item, Image.Image):
            from torchvision.transforms.functional import pil_to_tensor

            return pil_to_tensor(item.convert("RGB"))
    raise TypeError(f"item {index} of {owner} is a {type(item).__name__}; a picture is a [C,H,W] tensor "
                    "in [0, 1] or a PIL image")


def as_picture_set(data: object) -> PictureSet:
    """A :class:`PictureSet` as it is, any other map-style ``Dataset`` wrapped in :class:`DatasetPictures`."""
    if isinstance(data, PictureSet):
        return data
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                     and not isinstance(data, str | bytes | Tensor)):
        return DatasetPictures(data)  # type: ignore[arg-type]
    raise TypeError(f"expected a convscope.data.PictureSet or a torch.utils.data.Dataset of (image, label) or image "
                    f"items, got {type(data).__name__}")

