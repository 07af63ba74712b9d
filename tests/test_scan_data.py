"""Picture sets: the IDX reader, Fashion-MNIST, image folders, sample crops, naming a set in one string."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.data import (
    FashionMNIST,
    FittedPictures,
    ImageFolder,
    SampleCrops,
    TensorPictures,
    dataset_from_spec,
    has_fashion_mnist,
    open_dataset,
    read_idx,
)
from convscope.data.idx import parse_idx
from convscope.images import load_sample
from convscope.models import Preprocess

needs_fashion_mnist = pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed "
                                         "(scripts/setup installs Debian's dataset-fashion-mnist)")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_idx_reader_literal_and_corrupt_files(tmp_path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(array)), array)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(read_idx(path), array)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        parse_idx(idx_bytes(array)[:-1])
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"\x01\x02\x08\x01abcd")
    with pytest.raises(ValueError, match="unsigned bytes"):
        parse_idx(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="does not exist"):
        read_idx(tmp_path / "missing.gz")


def write_fake_fashion(folder, train: int = 6, test: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, (count, 28, 28))
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.arange(count) % 10)))


def test_fashion_mnist_from_a_given_folder(tmp_path) -> None:
    write_fake_fashion(tmp_path)
    every = FashionMNIST(tmp_path, split="all")
    assert len(every) == 10 and len(FashionMNIST(tmp_path, split="train")) == 6
    assert every.picture(7).shape == (1, 28, 28) and every.label(7) == 1
    assert every.name(7) == "test #1 (Trouser)"
    assert torch.equal(every.labels(), torch.tensor([0, 1, 2, 3, 4, 5, 0, 1, 2, 3]))
    assert open_dataset(f"{tmp_path}:test").spec() == {"kind": "fashion-mnist", "root": str(tmp_path),
                                                       "split": "test"}
    assert len(dataset_from_spec(open_dataset(str(tmp_path), limit=3).spec())) == 3
    with pytest.raises(ValueError, match="split"):
        FashionMNIST(tmp_path, split="validation")
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(ValueError, match="dataset-fashion-mnist"):
        FashionMNIST(tmp_path)


@needs_fashion_mnist
def test_the_installed_fashion_mnist() -> None:
    train, test = FashionMNIST(split="train"), FashionMNIST(split="test")
    assert (len(train), len(test), len(FashionMNIST(split="all"))) == (60_000, 10_000, 70_000)
    assert train.label(0) == 9 and test.label(0) == 9  # both splits start with an ankle boot
    assert torch.equal(torch.bincount(test.labels()), torch.full((10,), 1000))
    picture = train.picture(0)
    assert picture.dtype == torch.float32 and 0 <= float(picture.min()) and float(picture.max()) <= 1


def test_image_folder_with_and_without_classes(tmp_path) -> None:
    for name in ("dogs/a.png", "dogs/b.png", "cats/c.png"):
        (tmp_path / "sorted" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 9), (255, 0, 0)).save(tmp_path / "sorted" / name)
    labelled = ImageFolder(tmp_path / "sorted")
    assert labelled.class_names == ["cats", "dogs"] and [labelled.label(i) for i in range(3)] == [0, 1, 1]
    assert labelled.picture(0).shape == (3, 9, 12) and labelled.name(0) == "cats/c.png"
    Image.new("L", (5, 5)).save(tmp_path / "sorted" / "loose.png")
    flat = ImageFolder(tmp_path / "sorted")
    assert flat.class_names is None and flat.label(0) == -1
    with pytest.raises(ValueError, match="out of range"):
        flat.picture(4)
    with pytest.raises(ValueError, match="not a folder"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no picture set"):
        open_dataset(str(tmp_path / "missing"))


def test_sample_crops_geometry() -> None:
    crops = SampleCrops(["coffee"], scales=[1.0, 0.5])
    # coffee is 400×600: at scale 1, 400 px squares step by at most half a side over 200 px → left 0, 200;
    # at scale 0.5, 200 px squares → top 0/100/200 and left 0/100/…/400
    assert len(crops) == 2 + 3 * 5
    assert [tuple(c[1:]) for c in crops.crops[:3]] == [(0, 0, 400), (0, 200, 400), (0, 0, 200)]
    assert torch.equal(crops.picture(1), crops.picture(1)) and crops.picture(1).shape == (3, 400, 400)
    assert torch.equal(crops.picture(16), load_sample("coffee")[:, 200:400, 400:600])
    assert crops.label(4) == 0 and crops.class_names == ["coffee"]
    with pytest.raises(ValueError, match="chelsea"):
        SampleCrops(["chelse"])
    with pytest.raises(ValueError, match="scales"):
        SampleCrops(["coffee"], [1.5])


def test_fitted_pictures_and_tensor_sets() -> None:
    data = TensorPictures(torch.rand(3, 1, 28, 28), [2, 0, 1], ["x", "y", "z"])
    fitted = FittedPictures(data, Preprocess(resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3))
    index, picture, label = fitted[1]
    assert (index, tuple(picture.shape), label) == (1, (3, 32, 32), 0)
    with pytest.raises(ValueError, match="crop size"):
        FittedPictures(data, Preprocess(resize=32, crop=None))
    with pytest.raises(ValueError, match="labels"):
        TensorPictures(torch.rand(3, 1, 4, 4), [1, 2])
