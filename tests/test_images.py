"""Reading pictures: formats, modes, folders, samples and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.images import expand_sources, load_image, load_images, load_sample, sample_names


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_rgb_png_round_trip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    picture = load_image(_save(tmp_path / "a.png", array))
    assert picture.shape == (3, 5, 7) and picture.dtype == torch.float32
    torch.testing.assert_close(picture, torch.from_numpy(array).permute(2, 0, 1).float() / 255)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    picture = load_image(_save(tmp_path / "g.png", np.full((4, 4), 51, np.uint8)))
    assert picture.shape == (3, 4, 4)
    assert torch.allclose(picture, torch.full((3, 4, 4), 0.2))


def test_rgba_is_composited_on_white(tmp_path):
    array = np.zeros((2, 2, 4), np.uint8)
    array[..., 0] = 255
    array[0, 0, 3] = 255  # opaque red; the rest fully transparent
    picture = load_image(_save(tmp_path / "t.png", array))
    assert picture[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert picture[:, 1, 1].tolist() == [1.0, 1.0, 1.0]


def test_sixteen_bit_png(tmp_path):
    array = np.full((3, 3), 65535, np.uint16)
    array[0, 0] = 0
    path = tmp_path / "d.png"
    Image.fromarray(array).save(path)
    picture = load_image(path)
    assert picture[0, 0, 0].item() == 0.0 and picture[0, 1, 1].item() == pytest.approx(1.0)


def test_jpeg(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("RGB", (10, 6), (200, 100, 0)).save(path, quality=95)
    picture = load_image(path)
    assert picture.shape == (3, 6, 10)
    assert picture[:, 3, 5].tolist() == pytest.approx([200 / 255, 100 / 255, 0], abs=0.02)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="nope.png.*does not exist"):
        load_image(tmp_path / "nope.png")
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(corrupt)
    truncated = tmp_path / "half.png"
    _save(tmp_path / "full.png", np.zeros((64, 64, 3), np.uint8))
    truncated.write_bytes((tmp_path / "full.png").read_bytes()[:60])
    with pytest.raises(ValueError, match="half.png"):
        load_image(truncated)


def test_folders_expand_sorted_and_recursive(tmp_path):
    (tmp_path / "b").mkdir()
    _save(tmp_path / "b" / "2.png", np.zeros((2, 2, 3), np.uint8))
    _save(tmp_path / "1.png", np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.rsplit("/", 1)[-1] for p in expand_sources(tmp_path)] == ["1.png", "2.png"]
    named = load_images([tmp_path, "sample:coffee"])
    assert [n.name for n in named] == ["1", "2", "coffee"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        expand_sources(empty)


def test_samples_load_offline():
    for name in ("chelsea", "coffee", "astronaut", "rocket", "brick", "china", "flower"):
        picture = load_sample(name)
        assert picture.dim() == 3 and picture.shape[0] == 3
        assert 0.0 <= picture.min() and picture.max() <= 1.0
    assert "gravel" in sample_names()
    with pytest.raises(ValueError, match="chelsea"):
        load_image("sample:chelsee")


def test_tensor_and_array_inputs():
    assert load_image(np.zeros((4, 5), np.uint8)).shape == (3, 4, 5)
    assert load_image(torch.zeros(1, 4, 5)).shape == (3, 4, 5)
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        load_image(torch.zeros(2, 4, 5))
