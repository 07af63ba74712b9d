"""The projection of the strongest feature map beside the occlusion maps (Zeiler & Fergus's figure 7)."""

from __future__ import annotations

import torch
from torch import nn

from convscope.attribution.feature_projection import (
    occlusion_projection,
    project_feature_map,
    strongest_map_projection,
)
from convscope.attribution.figures import occlusion_figure
from convscope.attribution.occlusion import Occlusion
from convscope.models.model import Model
from convscope.models.preprocessing import Preprocess


def _model(pool: bool) -> Model:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2) if pool else nn.Conv2d(4, 4, 2, stride=2),
              nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)]
    net = nn.Sequential(*layers).eval()
    preprocess = Preprocess(resize=None, crop=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return Model(net, preprocess=preprocess, class_names=["a", "b", "c"], name="tiny")


def test_one_channel_per_picture_is_each_pictures_own_projection():
    model = _model(pool=True)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    both = project_feature_map(model, x, "4", torch.tensor([1, 3]))
    assert torch.allclose(both[0], project_feature_map(model, x[:1], "4", 1)[0], atol=1e-7)
    assert torch.allclose(both[1], project_feature_map(model, x[1:], "4", 3)[0], atol=1e-7)


def test_deconvnet_is_used_where_it_reads_the_picture_and_guided_backprop_where_it_cannot():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    channels = torch.tensor([0, 2])
    pooled = _model(pool=True)
    projected, method = strongest_map_projection(pooled, x, "4", channels)
    assert method == "deconvnet"
    assert torch.allclose(projected, project_feature_map(pooled, x, "4", channels))
    strided = _model(pool=False)  # no max-pooling switches: the deconvnet has nothing of the picture to read
    projected, method = strongest_map_projection(strided, x, "4", channels)
    assert method == "guided backprop"
    assert torch.allclose(projected, project_feature_map(strided, x, "4", channels, method="guided backprop"))
    assert not torch.allclose(projected, project_feature_map(strided, x, "4", channels))


def test_the_occlusion_figure_shows_the_projection_beside_the_input():
    model = _model(pool=True)
    pixels = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    found = Occlusion(model, size=4, stride=4).maps(model.preprocess.normalize(pixels), None, layer="4")
    projection = occlusion_projection(model, pixels, found)
    assert projection is not None and projection[1] == "deconvnet"
    plain = occlusion_figure(found, pixels[0], model.classes(), tile_size=300)
    shown = occlusion_figure(found, pixels[0], model.classes(), tile_size=300, projection=projection)
    assert shown.size[0] > plain.size[0] + 290  # one more 300-px panel
    without_layer = Occlusion(model, size=4, stride=4).maps(model.preprocess.normalize(pixels), None)
    assert occlusion_projection(model, pixels, without_layer) is None
