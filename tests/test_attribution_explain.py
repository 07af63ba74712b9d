"""Explanations from pictures: do the maps point at the right object, the pictures, the command line."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.attribution import METHODS, Explanation, compare, explain, make_method
from convscope.cli import main
from convscope.models import Model, Preprocess

QUICK = {"smooth_grad": {"samples": 16}, "integrated_gradients": {"steps": 16}, "occlusion": {"size": 32, "stride": 32}}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny workloads: no waiting on a busy core


@pytest.fixture(scope="module")
def cat_and_cup(lite0):
    """The cat on the left half, the espresso on the right half of one 224×224 input."""
    from convscope.images import load_sample

    halves = [F.interpolate(lite0.preprocess.fit([load_sample(name)]), size=(224, 112), mode="area")
              for name in ("chelsea", "coffee")]
    return lite0.preprocess.normalize(torch.cat(halves, 3))


def left_share(method, inputs, target) -> float:
    heat = method.heat(method(inputs, target), tuple(inputs.shape[-2:]))[0]
    return float(heat[:, :112].sum() / heat.sum())


@pytest.mark.parametrize("name", ["occlusion", "cam", "grad_cam", "guided_grad_cam", "grad_cam_plus_plus",
                                  "layer_cam", "smooth_grad", "integrated_gradients"])
def test_class_maps_point_at_the_object_of_their_class(lite0, cat_and_cup, name):
    method = make_method(name, lite0, **QUICK.get(name, {}))
    on_cat = left_share(method, cat_and_cup, "tabby")
    on_cup = left_share(method, cat_and_cup, "espresso")
    assert on_cat > 0.6 and on_cup < 0.45 and on_cat - on_cup > 0.2, (on_cat, on_cup)


@pytest.mark.slow
def test_score_cam_points_at_the_object_of_its_class(lite0, cat_and_cup):
    method = make_method("score_cam", lite0)
    assert left_share(method, cat_and_cup, "tabby") > 0.8
    assert left_share(method, cat_and_cup, "espresso") < 0.2


def test_grad_cam_for_tabby_is_a_structured_map_not_noise(lite0, chelsea):
    result = explain(lite0, chelsea, "grad_cam", "tabby")
    assert isinstance(result, Explanation) and result.layer == "bn2"
    assert result.labels[0].startswith("tabby (")
    heat = result.heat[0]
    assert heat.max() > 1.5 * heat.mean()  # it picks out part of the face, it does not paint everything
    # a smooth map: neighbouring pixels agree (noise would not)
    assert torch.corrcoef(torch.stack([heat[:, :-1].flatten(), heat[:, 1:].flatten()]))[0, 1] > 0.95


def test_pictures_of_an_explanation(lite0, chelsea):
    result = explain(lite0, [chelsea, chelsea], "guided_backprop", "tabby")
    assert result.maps.shape == (2, 3, 224, 224) and result.heat.shape == (2, 224, 224)
    assert result.map_picture(1).size == (224, 224) and result.overlay().size == (224, 224)
    picture = result.picture()
    assert picture.size[0] > 3 * 224 and result._repr_png_().startswith(b"\x89PNG")
    occluded = explain(lite0, chelsea, "occlusion", "tabby", layer="blocks.5", size=56, stride=56)
    assert occluded.occlusion is not None and occluded.occlusion.layer == "blocks.5"
    assert occluded.occlusion_picture().size[0] > 4 * 224
    with pytest.raises(ValueError, match="has no occlusion maps"):
        result.occlusion_picture()


class SiLUNet(nn.Module):
    """conv → ELU → GAP → linear: guided backprop and the deconvnet have no rule for it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ELU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def test_compare_shows_every_method_and_says_why_one_cannot_run():
    torch.manual_seed(0)
    model = Model(SiLUNet().eval(), preprocess=Preprocess(resize=None, crop=16, mean=(0, 0, 0), std=(1, 1, 1)),
                  class_names=["a", "b", "c"], name="silu")
    pictures = [torch.rand(3, 16, 16), torch.rand(3, 16, 16)]
    options = {"occlusion": {"size": 4, "stride": 4}, "smooth_grad": {"samples": 2},
               "integrated_gradients": {"steps": 2}}
    figure = compare(model, pictures, target=[0, 2], options=options, tile_size=32)
    columns = len(METHODS) + 1
    assert figure.size[0] > columns * 32
    # the guided methods' reasons are written under the figure, naming the activation
    text_rows = figure.array[-40:]
    assert (text_rows < 100).any()


def test_make_method_checks_names_layers_and_options(lite0):
    with pytest.raises(ValueError, match="unknown attribution method 'gradcam'; did you mean 'grad_cam'"):
        make_method("gradcam", lite0)
    with pytest.raises(ValueError, match="saliency does not read a layer"):
        make_method("saliency", lite0, layer="bn2")
    with pytest.raises(ValueError, match="takes no option 'steps'"):
        make_method("grad_cam", lite0, steps=3)
    assert make_method("integrated_gradients", lite0, steps=3).steps == 3


def test_command_line_writes_map_and_overlay(tmp_path, capsys):
    code = main(["explain", "sample:chelsea", "--method", "grad_cam", "--targets", "tabby", "--device", "cpu",
                 "--out", str(tmp_path)])
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())  # picture, method, target, what; a digest of the settings
    assert [re.sub("_[0-9a-f]{6}[.]", ".", name) for name in names] == ["explain_chelsea_grad_cam_tabby_map.png",
                                                                       "explain_chelsea_grad_cam_tabby_overlay.png"]
    assert "Grad-CAM at bn2 for tabby" in capsys.readouterr().out


def test_command_line_errors_are_one_line(tmp_path, capsys):
    assert main(["explain", "sample:chelsea", "--method", "cam", "--layer", "bn9", "--device", "cpu",
                 "--out", str(tmp_path)]) == 2
    assert "unknown layer 'bn9'; did you mean" in capsys.readouterr().err
    assert main(["explain", "sample:chelsea", "--targets", "zebra crossing", "--device", "cpu",
                 "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_command_line_all_methods_figure(tmp_path):
    assert main(["explain", "sample:coffee", "--method", "all", "--samples", "8", "--steps", "8",
                 "--occluder-size", "56", "--occluder-stride", "56", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("explain_coffee_all_*.png"))) == 1
