"""Any torch Dataset in Scan and linear probes: (image, label) or image items, PIL or tensors, clear refusals."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from scan_worker import LAYERS, pictures, small_model
from torch.utils.data import Dataset

from convscope.analysis.probes import linear_probes
from convscope.data import DatasetPictures, as_picture_set
from convscope.scan import Scan, ScanResult


class Pairs(Dataset):
    """A plain Dataset over the scan tests' pictures: (image, label), image only, or PIL images."""

    classes = ["a", "b", "c"]

    def __init__(self, mode: str = "pairs") -> None:
        self.source, self.mode = pictures(), mode

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image, label = self.source.picture(index), self.source.label(index)
        if self.mode == "image":
            return image
        if self.mode == "pil":
            return Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy()), torch.tensor(label)
        if self.mode == "normalised":
            return (image - 0.5) / 0.25, label
        return image, label


def test_scan_of_a_plain_dataset_equals_the_scan_of_the_same_pictures(tmp_path):
    model = small_model()
    reference = Scan(model, LAYERS, k=3).run(pictures(), tmp_path / "ref", batch_size=8, progress=False)
    found = Scan(model, LAYERS, k=3).run(Pairs(), tmp_path / "any", batch_size=8, progress=False)
    for layer in LAYERS:
        torch.testing.assert_close(found.features(layer), reference.features(layer))
        assert torch.equal(found.top(layer).images, reference.top(layer).images)
    assert torch.equal(found.labels, reference.labels)
    unlabelled = Scan(model, LAYERS[:1], k=3).run(Pairs("image"), tmp_path / "img", progress=False)
    assert (unlabelled.labels == -1).all()
    reopened = ScanResult.load(tmp_path / "any", pictures=Pairs())  # a Dataset cannot be reopened from disk
    assert reopened.top_patches("relu2", channels=[0]).patches.shape[:2] == (1, 3)


def test_the_explorer_shows_a_scan_of_a_plain_dataset(tmp_path):
    from convscope.explore.state import Explorer

    model = small_model()
    Scan(model, ["relu2"], k=2).run(Pairs(), tmp_path / "scan", progress=False)
    explorer = Explorer(model, scan=tmp_path / "scan", scan_pictures=Pairs())
    assert len(explorer.scan.pictures) == len(Pairs())


def test_dataset_items_are_read_and_checked():
    wrapped = as_picture_set(Pairs("pil"))
    assert isinstance(wrapped, DatasetPictures) and wrapped.class_names == ["a", "b", "c"]
    torch.testing.assert_close(wrapped.picture(4), pictures().picture(4), atol=1 / 255, rtol=0)
    assert wrapped.label(4) == pictures().label(4)
    with pytest.raises(ValueError, match="leave Normalize out of the dataset's transform"):
        as_picture_set(Pairs("normalised"))
    with pytest.raises(TypeError, match="expected a convscope.data.PictureSet or a torch.utils.data.Dataset"):
        as_picture_set(42)


def test_linear_probes_take_plain_datasets(tmp_path):
    model = small_model()
    result = linear_probes(model, Pairs(), Pairs(), ["relu2"], classifiers=["softmax"], pixels=False,
                           work=tmp_path, progress=False)
    assert 0.0 <= result.accuracy["softmax"]["relu2"] <= 1.0
