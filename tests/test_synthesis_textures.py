"""Texture synthesis (Efros–Leung, Gram), style transfer, fast style and layer choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.models import Model
from convscope.synthesis import (
    FastStyle,
    TransformNet,
    efros_leung,
    gram_texture,
    style_layers,
    style_transfer,
    train_fast_style,
)
from convscope.synthesis.efros_leung import window_distances


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_batched_window_distances_equal_a_brute_force_loop():
    g = seeded()
    values, patches = torch.rand(4, 3, 9, generator=g), torch.rand(7, 27, generator=g)
    weights = torch.rand(4, 9, generator=g) * (torch.rand(4, 9, generator=g) > 0.4)
    fast = window_distances(values, weights, patches)
    slow = torch.tensor([[float((weights[p] * (values[p] - patches[n].view(3, 9)).pow(2)).sum())
                          for n in range(7)] for p in range(4)])
    assert torch.allclose(fast, slow, atol=1e-5)


def test_efros_leung_continues_a_periodic_pattern_exactly():
    stripes = (torch.arange(24) % 4 < 2).float().view(1, 1, 24).expand(3, 24, 24).clone()
    result = efros_leung(stripes, (20, 28), window=5, generator=seeded(), progress=False)
    image = result.image
    assert image.shape == (3, 20, 28)
    assert result.mean_error == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(image, image[:, :1].expand_as(image))          # every row the same
    row = image[0, 0]
    assert torch.equal(row[4:], row[:-4]) and set(row.tolist()) == {0.0, 1.0}  # period 4, copied values


def test_efros_leung_copies_source_pixels_and_repeats_with_the_seed():
    source = torch.rand(3, 12, 12, generator=seeded(2))
    a = efros_leung(source, 10, window=5, generator=seeded(1), progress=False)
    b = efros_leung(source, 10, window=5, generator=seeded(1), progress=False)
    assert torch.equal(a.image, b.image)
    colours = {tuple(c) for c in source.flatten(1).T.tolist()}
    assert all(tuple(c) in colours for c in a.image.flatten(1).T.tolist())
    with pytest.raises(ValueError, match="odd"):
        efros_leung(source, 10, window=4)
    with pytest.raises(ValueError, match="smaller than"):
        efros_leung(source, 10, window=13)


def test_gram_texture_and_style_transfer_reduce_their_losses(tiny_model):
    source = 0.3 * torch.rand(3, 16, 16, generator=seeded())        # darker than the grey start
    texture = gram_texture(tiny_model, source, layers=["relu"], smoothing="none", steps=15, lr=0.01,
                           progress=False)
    assert texture.images.shape == (1, 3, 16, 16) and texture.loss_reduction > 1
    styled = style_transfer(tiny_model, torch.rand(3, 16, 16), source, size=None, content_layer="conv",
                            style_layers=["relu"], smoothing="none", steps=10, progress=False)
    assert styled.image.shape == (3, 16, 16) and styled.losses[-1] < styled.losses[0]


def test_layer_choice_for_vgg_the_embedded_model_and_residual_networks(lite0):
    from torchvision.models import vgg19

    vgg = style_layers(Model(vgg19(weights=None), name="vgg19"))
    assert vgg.style == ("features.1", "features.6", "features.11", "features.20", "features.29")
    assert vgg.content == "features.22" and vgg.smoothing == "none"
    from torchvision.models import resnet18

    lite = style_layers(lite0)
    assert lite.smoothing == "none" and all(name in lite0.layer_names() for name in (*lite.style, lite.content))
    resnet = style_layers(Model(resnet18(weights=None), name="resnet18"))
    assert resnet.style == ("relu", "layer1", "layer2", "layer3", "layer4")
    assert resnet.content == "layer3" and resnet.smoothing == "softmax"


def test_fast_style_trains_saves_loads_and_leaves_state_alone(tiny_model, tmp_path):
    net = TransformNet(width=4, residual_blocks=1)
    assert net(torch.rand(2, 3, 13, 10)).shape == (2, 3, 13, 10)
    loss_net = tiny_model.net.train()
    before = {k: v.clone() for k, v in loss_net.state_dict().items()}
    style, content = torch.rand(3, 20, 20), torch.rand(3, 24, 30)
    rng = torch.get_rng_state()
    trained = train_fast_style(tiny_model, style, [content], size=16, steps=3,
                               batch=2, width=4, content_layer="conv", style_layers=["relu"], smoothing="none",
                               generator=seeded(), progress=False)
    assert torch.equal(torch.get_rng_state(), rng)
    assert loss_net.training and all(torch.equal(v, before[k]) for k, v in loss_net.state_dict().items())
    picture = torch.rand(3, 18, 22)
    path = trained.save(tmp_path / "style.pt")
    loaded = FastStyle.load(path, device="cpu")
    assert torch.allclose(loaded.apply(picture), trained.apply(picture))
    with pytest.raises(ValueError, match="not a convscope style network"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
        FastStyle.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="at least one content picture"):
        train_fast_style(tiny_model, torch.rand(3, 8, 8), [], size=16)
    assert isinstance(trained.net, nn.Module)
