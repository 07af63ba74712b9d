"""Filter pictures and the rendering helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convscope import filters
from convscope.render import Picture, colorize, grid, normalize, overlay, stack, titled


def test_filter_kinds(tiny_net, lite0):
    assert filters(tiny_net).kind == "colour"
    torch.testing.assert_close(filters(tiny_net).weight, tiny_net.conv.weight.detach())
    assert filters(lite0).layer == "conv_stem"
    assert filters(lite0, "blocks.1.0.conv_dw").kind == "depthwise"
    assert filters(lite0, "blocks.1.0.conv_pw").kind == "pointwise"
    deep = nn.Sequential(nn.Conv2d(3, 4, 5), nn.Conv2d(4, 6, 3))
    assert filters(deep, "1").kind == "per-channel"
    for view in (filters(lite0), filters(lite0, "blocks.1.0.conv_dw"), filters(lite0, "blocks.1.0.conv_pw"),
                 filters(deep, "1")):
        assert view.picture().array.shape[2] == 3


def test_filters_of_a_non_convolution_is_explained(tiny_net):
    with pytest.raises(ValueError, match="not a convolution"):
        filters(tiny_net, "fc")


def test_colour_filter_tiles_keep_sign():
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1))
    tile = filters(nn.Sequential(conv)).picture(tile_size=24).array
    # the tile's centre pixel: red channel white (+), green black (−), blue mid-grey (0)
    header = tile.shape[0] - 24 - 2 * 4 - 15
    centre = tile[header + 4 + 12, 4 + 12]
    assert centre.tolist() == [255, 0, 128]


def test_normalize_modes():
    v = torch.tensor([[-2.0, 0.0, 1.0, 2.0]]).view(1, 2, 2)
    assert normalize(v).flatten().tolist() == [0.0, 0.5, 0.75, 1.0]
    assert normalize(v, "symmetric").flatten().tolist() == [0.0, 0.5, 0.75, 1.0]
    assert normalize(v, "abs").flatten().tolist() == [1.0, 0.0, 0.5, 1.0]
    assert normalize(torch.ones(1, 2, 2)).flatten().tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="minmax"):
        normalize(v, "loud")


def test_colorize_and_overlay():
    colours = colorize(torch.tensor([[0.0, 1.0]]), "gray")
    assert colours.shape == (3, 1, 2)
    assert colours[:, 0, 0].tolist() == [0.0, 0.0, 0.0] and colours[:, 0, 1].tolist() == [1.0, 1.0, 1.0]
    picture, heat = torch.rand(3, 16, 16), torch.rand(4, 4)
    before = (picture.clone(), heat.clone())
    blended = overlay(picture, heat, alpha=0.0)
    torch.testing.assert_close(blended, picture)
    assert torch.equal(picture, before[0]) and torch.equal(heat, before[1])
    with pytest.raises(ValueError, match="one heatmap"):
        overlay(picture, torch.rand(2, 4, 4))


def test_grid_layout_and_picture():
    pic = grid(torch.rand(5, 3, 4, 4), columns=3, labels=list("abcde"), tile_size=8, padding=2)
    assert isinstance(pic, Picture) and pic.size[0] == 3 * 12 + 2
    assert pic._repr_png_().startswith(b"\x89PNG")
    assert titled(pic, "title").size[1] > pic.size[1]
    assert stack([pic, pic], gap=4).size[0] == 2 * pic.size[0] + 4
    with pytest.raises(ValueError, match="labels"):
        grid(torch.rand(2, 3, 4, 4), labels=["a"])
    with pytest.raises(ValueError, match="uint8"):
        Picture(np.zeros((2, 2), np.uint8))
