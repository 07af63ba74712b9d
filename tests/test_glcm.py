"""GLCM texture statistics: hand-computed values on stripes, and the yardsticks' order on a real texture."""

from __future__ import annotations

import pytest
import torch

from convscope.images import load_sample
from convscope.synthesis.glcm import compare_glcm, glcm_distance, glcm_statistics, grey_levels
from convscope.synthesis.texture import resize_short_side


def test_stripes_by_hand() -> None:
    stripes = torch.zeros(1, 16, 16)
    stripes[..., ::2] = 1.0  # vertical stripes one pixel wide: levels 0 and 3 alternate along rows
    contrast, dissimilarity, homogeneity, energy, correlation = glcm_statistics(stripes, distances=(1,),
                                                                                levels=4)[:, 0].tolist()
    # at 0°, 45° and 135° every pair differs by 3 levels, at 90° none does; averaged over the four directions
    assert contrast == pytest.approx(3 * 9 / 4)
    assert dissimilarity == pytest.approx(3 * 3 / 4)
    assert homogeneity == pytest.approx((3 * 0.1 + 1) / 4)
    assert correlation == pytest.approx((-1 - 1 - 1 + 1) / 4)
    assert energy == pytest.approx(2 ** -0.5)  # each direction: two cells of 1/2 (0°/45°/135°) or two of 1/2 (90°)


def test_grey_levels_use_luminance_and_equal_bins() -> None:
    picture = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 2, 2)  # pure red: luminance 0.299
    assert grey_levels(picture, 10).tolist() == [[2, 2], [2, 2]]
    with pytest.raises(ValueError, match="too small"):
        glcm_statistics(torch.rand(3, 6, 6))


def test_a_texture_is_nearer_its_own_crop_than_its_shuffled_pixels() -> None:
    brick = resize_short_side(load_sample("brick"), 96)
    found = compare_glcm(brick, {"crop": brick[:, :64, :64], "noise": torch.rand(3, 96, 96)})
    assert found.distances["crop"] < found.shuffled < found.distances["noise"]
    assert found.within_source < found.shuffled
    assert glcm_distance(found.statistics["crop"], found.statistics["crop"]) == 0
    assert len(found.lines()) == 5


def test_the_matrix_of_alternating_columns_is_known_by_hand():
    from convscope.synthesis.glcm import glcm_matrix

    stripes = torch.zeros(1, 16, 16)
    stripes[..., 1::2] = 1.0  # grey level 0 and 31 in alternate columns
    matrix = glcm_matrix(stripes, distance=1, levels=32)
    # 0°, 45° and 135° neighbours differ, 90° neighbours are alike: 3/4 of pairs (0, 31), 1/4 alike
    expected = torch.zeros(32, 32)
    expected[0, 31] = expected[31, 0] = 3 / 8
    expected[0, 0] = expected[31, 31] = 1 / 8
    torch.testing.assert_close(matrix, expected)


def test_the_comparison_draws_each_picture_above_its_matrix():
    from convscope.synthesis.glcm import compare_glcm

    generator = torch.Generator().manual_seed(0)
    source = torch.rand(3, 40, 40, generator=generator)
    picture = compare_glcm(source, [source.flip(-1)]).picture(tile_size=64)
    assert picture.array.shape[1] >= 3 * 64 and picture.array.shape[0] >= 2 * 64  # 3 pictures over 3 matrices
