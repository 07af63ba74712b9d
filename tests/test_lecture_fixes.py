"""Fixes found by checking the views against the lectures: grey pictures in explain/compare, the filters view,
never-positive vs dead channels, the duplicate sample photo, output names, dead channels in feature evolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convscope as cs
from convscope.cli import main
from convscope.data.crops import SampleCrops
from convscope.images import SAMPLES, load_sample
from convscope.inspection.activations import activation_maps
from convscope.inspection.filters import Filters, filters
from convscope.models import Model, Preprocess
from convscope.render.overlay import overlay


def grey_model() -> Model:
    """conv 1→2 (3×3) → ReLU → global mean → linear 2→2, on 12×12 grey pictures."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 2)).eval()
    return Model(net, preprocess=Preprocess(resize=None, crop=12, mean=(0.5,), std=(0.5,), channels=1),
                 class_names=["a", "b"], name="grey")


def test_explain_and_compare_draw_grey_pictures() -> None:
    model, picture = grey_model(), torch.rand(1, 12, 12)
    for method in ("grad_cam", "guided_backprop", "saliency"):
        figure = cs.explain(model, picture, method, "a", layer="1" if method == "grad_cam" else None).picture()
        assert figure.array.shape[2] == 3
    assert cs.compare(model, [picture, picture], ["saliency", "grad_cam"], layer="1").size[0] > 200
    heat = torch.rand(12, 12)
    torch.testing.assert_close(overlay(picture, heat), overlay(picture.expand(3, -1, -1), heat))


def test_pointwise_filters_are_drawn_whole_and_said_so() -> None:
    pointwise = Filters("pw", torch.randn(96, 16, 1, 1), 1, "pointwise")
    assert "first" not in pointwise.caption(64)  # the matrix holds all 96 rows
    depthwise = Filters("dw", torch.randn(96, 1, 3, 3), 96, "depthwise")
    assert depthwise.caption(64).startswith("first 64 of 96")


def test_first_layer_tiles_are_the_optimal_inputs_under_a_norm_constraint(lite0) -> None:
    view = filters(lite0)
    assert view.kind == "colour" and "W/‖W‖" in view.caption()
    best = view.optimal_inputs()
    weight = view.weight.flatten(1)
    responses = (weight * best.flatten(1)).sum(1)
    torch.testing.assert_close(responses, weight.norm(dim=1))  # W·(W/‖W‖) = ‖W‖
    draws = torch.randn(500, weight.shape[1], generator=torch.Generator().manual_seed(0))
    others = torch.nn.functional.normalize(draws, dim=1)
    assert ((others @ weight.T) <= responses + 1e-5).all()  # no other unit-norm input does better
    grey = filters(grey_model())
    assert grey.kind == "grey" and "W/‖W‖" in grey.caption()


def test_a_channel_without_rectifier_is_never_positive_not_dead() -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU()).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[-1.0, -1, -1], [1, 1, 1]]).view(2, 3, 1, 1))
        net[0].bias.zero_()
    model = Model(net, preprocess=Preprocess(resize=None, crop=4, mean=(0, 0, 0), std=(1, 1, 1)), name="signs")
    picture = torch.rand(3, 4, 4) * 0.9 + 0.1
    linear = activation_maps(model, picture, "0")  # channel 0 is negative everywhere: information, not death
    assert not linear.rectified and linear.never_positive.tolist() == [True, False]
    assert linear.dead.tolist() == [False, False]
    rectified = activation_maps(model, picture, "1")
    assert rectified.rectified and rectified.dead.tolist() == [True, False]


def test_cat_is_chelsea_and_the_sample_set_holds_each_photo_once() -> None:
    assert torch.equal(load_sample("cat"), load_sample("chelsea"))
    photos = [load_sample(name) for name in SampleCrops(scales=(1.0,)).class_names]
    assert len(photos) == len(SAMPLES)
    for i, a in enumerate(photos):  # no photo is in the set under two labels
        for b in photos[i + 1:]:
            assert a.shape != b.shape or not torch.equal(a, b)
    with pytest.raises(ValueError, match="same photo as 'chelsea'"):
        SampleCrops(["chelsea", "cat"])


def test_output_names_do_not_collide(tmp_path, capsys) -> None:
    for model in ("fashion_cnn", "efficientnet_lite0"):
        assert main(["filters", "--model", model, "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert {p.name[:-11] for p in tmp_path.glob("filters_*.png")} == {"filters_fashion_cnn_conv1",
                                                                       "filters_efficientnet_lite0_conv_stem"}
    for kind in ("channel", "neuron"):
        assert main(["featviz", "--model", "fashion_cnn", "--layer", "relu2", "--channels", "3", "--kind", kind,
                     "--steps", "2", "--size", "28", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert {p.name[:-11] for p in tmp_path.glob("featviz_*.png")} == {"featviz_relu2_channel_3",
                                                                       "featviz_relu2_neuron_3"}


def test_evolution_flags_dead_channels_and_shows_projections(tmp_path) -> None:
    from convscope.analysis.evolution import feature_evolution
    from convscope.data import TensorPictures
    from convscope.models import load_model

    trained = load_model("fashion_cnn", device="cpu").net.state_dict()
    broken = {name: value.clone() for name, value in trained.items()}
    broken["conv2.bias"][1] = -1e4  # relu2 channel 1 fires for no picture
    torch.save(broken, tmp_path / "epoch_00.pt")
    torch.save(trained, tmp_path / "epoch_01.pt")
    pictures = TensorPictures(torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    checkpoints = [tmp_path / "epoch_00.pt", tmp_path / "epoch_01.pt"]
    patches = feature_evolution(checkpoints, pictures, ["relu2"], channels=[0, 1], work=tmp_path / "a")
    assert patches.layers[0].dead.tolist() == [[False, False], [True, False]]
    projected = feature_evolution(checkpoints, pictures, ["relu2"], channels=[0, 1], work=tmp_path / "b",
                                  view="projection")
    assert projected.view == "projection" and "deconvnet" in projected.notes[0]
    assert projected.layers[0].patches.shape[:2] == (2, 2)
    assert not torch.equal(projected.layers[0].patches, patches.layers[0].patches)
    assert projected.picture().size[1] > 100
    with pytest.raises(ValueError, match="unknown view"):
        feature_evolution(checkpoints, pictures, ["relu2"], work=tmp_path / "c", view="deconv")


def test_texture_help_says_the_smoothing_the_code_chooses(lite0, capsys) -> None:
    from convscope.synthesis.layer_choice import style_layers

    assert style_layers(lite0).smoothing == "none"
    with pytest.raises(SystemExit):
        main(["texture", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    assert "noneforVGGandforEfficientNet-Lite" in text


def test_undefined_rank_correlation_is_labelled_and_explained() -> None:
    from convscope.analysis.label_randomisation import DataRandomisation, rho_label

    assert rho_label(float("nan")) == "ρ n/a" and rho_label(0.5) == "ρ 0.50"
    found = DataRandomisation(["saliency"], {"saliency": torch.tensor([0.5, float("nan")])},
                              {"saliency": torch.tensor([0.3, 0.1])}, {"saliency": torch.rand(2, 2, 8, 8)},
                              torch.rand(2, 1, 8, 8), {}, ["a", "b"])
    with_note = found.picture().size[1]
    found.spearman["saliency"] = torch.tensor([0.5, 0.2])
    assert with_note > found.picture().size[1]  # the line saying why ρ is n/a


def test_invariance_follows_a_true_label_per_picture_and_keeps_strips(tiny_model) -> None:
    from convscope.analysis.invariance import invariance_curves

    pictures = [torch.full((3, 8, 8), 0.9), torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))]
    curves = invariance_curves(tiny_model, pictures, "rotate", layers=["conv"], target=[0, 2],
                               amounts=[0.0, 90.0, 180.0], names=["white", "noise"])
    assert curves.class_names == ["bright", "contrast"] and curves.given
    turned = torch.rot90(pictures[1], 1, (1, 2))  # 90° on a square picture: the same pixels, exactly
    with torch.no_grad():
        probability = tiny_model(tiny_model.prepare([turned])).softmax(1)[0, 2]
    assert float(curves.probabilities[1, 1]) == pytest.approx(float(probability), abs=1e-5)
    assert curves.strips.shape == (2, 3, 3, 64, 64) and curves.strip_amounts.tolist() == [0.0, 90.0, 180.0]
    assert curves.picture().size[1] > curves.curves_picture().size[1]  # the strips above the curves
    top = invariance_curves(tiny_model, pictures, "rotate", layers=["conv"], amounts=[0.0, 90.0])
    assert not top.given
    with pytest.raises(ValueError, match="one class per picture"):
        invariance_curves(tiny_model, pictures, "rotate", layers=["conv"], target=[0, 1, 2])


def test_explain_follows_one_target_per_image_from_the_command_line(tmp_path, capsys) -> None:
    from PIL import Image

    for name in ("a", "b"):
        Image.fromarray((torch.rand(28, 28, generator=torch.Generator().manual_seed(ord(name))) * 255).byte().numpy()
                        ).save(tmp_path / f"{name}.png")
    images = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    code = main(["explain", *images, "--model", "fashion_cnn", "--method", "occlusion", "--occluder-size", "8",
                 "--occluder-stride", "8", "--targets", "Trouser", "Bag", "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "a: Occlusion for Trouser" in out and "b: Occlusion for Bag" in out
    assert len(list(tmp_path.glob("explain_b_occlusion_Bag_maps_*.png"))) == 1
    assert main(["explain", *images, "--model", "fashion_cnn", "--targets", "Trouser", "Bag", "Coat",
                 "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "one per picture" in capsys.readouterr().err
