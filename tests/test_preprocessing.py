"""Preprocessing: short-side resize, centre crop, normalisation and its inverse."""

from __future__ import annotations

import pytest
import torch

from convscope.models import Preprocess


def test_short_side_resize_then_centre_crop():
    p = Preprocess(resize=256, crop=224, mean=(0.5,) * 3, std=(0.5,) * 3)
    batch = p.fit([torch.rand(3, 300, 451), torch.rand(3, 500, 200)])
    assert batch.shape == (2, 3, 224, 224)
    assert 0 <= batch.min() and batch.max() <= 1


def test_crop_takes_the_centre():
    image = torch.zeros(3, 10, 10)
    image[:, 4:6, 4:6] = 1
    p = Preprocess(resize=None, crop=2, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert p.fit(image).sum().item() == 12.0


def test_normalise_and_back():
    p = Preprocess(resize=None, crop=None, mean=(0.5, 0.4, 0.3), std=(0.5, 0.25, 0.1))
    pictures = torch.rand(2, 3, 4, 4)
    normalised = p(list(pictures))
    torch.testing.assert_close(normalised[:, 1], (pictures[:, 1] - 0.4) / 0.25)
    torch.testing.assert_close(p.denormalize(normalised), pictures)


def test_single_channel_models_get_luminance():
    p = Preprocess(resize=None, crop=None, mean=(0.0,), std=(1.0,), channels=1)
    red = torch.zeros(3, 2, 2)
    red[0] = 1
    assert p(red).shape == (1, 1, 2, 2)
    assert p(red)[0, 0, 0, 0].item() == pytest.approx(0.299)


def test_small_images_are_padded_not_rejected():
    p = Preprocess(resize=None, crop=8, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert p.fit(torch.rand(3, 5, 12)).shape == (1, 3, 8, 8)


def test_bad_input_is_explained():
    p = Preprocess()
    with pytest.raises(ValueError, match=r"\[C,H,W\]"):
        p(torch.rand(2, 5, 5))
    with pytest.raises(ValueError, match="no images"):
        p([])
    with pytest.raises(ValueError, match="mean and std"):
        Preprocess(mean=(0.5,), std=(0.5, 0.5, 0.5))
