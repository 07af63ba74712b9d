"""Zeiler & Fergus's figure 2: single-unit projections next to the top patches, checked against the
library's Deconvnet.project and GuidedBackprop, and cut to the patch's own box."""

from __future__ import annotations

import pytest
import torch
from scan_worker import pictures, small_model

from convscope.attribution import Deconvnet, GuidedBackprop
from convscope.scan import Scan
from convscope.scan.projections import crop_box, deconvnet_ignores_pictures, project_units, top_projections
from convscope.targets import Neuron


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    return Scan(small_model(), ["relu1", "relu2"], k=4).run(pictures(), tmp_path_factory.mktemp("scan"),
                                                            batch_size=8, progress=False)


def _strongest(model, inputs, layer, channel):
    from convscope.attribution.base import forward

    maps = forward(model, inputs, [layer])[1][layer][:, channel]
    flat = maps.flatten(1).argmax(1)
    return flat // maps.shape[-1], flat % maps.shape[-1]


def test_unit_projection_is_the_deconvnet_projection_of_the_strongest_activation() -> None:
    model = small_model()
    inputs = model.prepare([pictures().picture(i) for i in range(5)])
    ys, xs = _strongest(model, inputs, "relu2", 0)
    got = project_units(model, inputs, "relu2", 0, ys, xs, method="deconvnet")
    expected = Deconvnet(model).project(inputs, "relu2", 0, strongest=True)
    assert got.abs().sum() > 0
    torch.testing.assert_close(got, expected)


def test_unit_projection_by_guided_backprop_is_its_neuron_gradient_times_the_value() -> None:
    model = small_model()
    inputs = model.prepare([pictures().picture(i) for i in range(3)])
    ys, xs = _strongest(model, inputs, "relu2", 3)
    got = project_units(model, inputs, "relu2", 3, ys, xs, method="guided_backprop")
    from convscope.attribution.base import forward

    maps = forward(model, inputs, ["relu2"])[1]["relu2"]
    for b in range(3):
        y, x = int(ys[b]), int(xs[b])
        expected = GuidedBackprop(model)(inputs[b:b + 1], Neuron("relu2", 3, y, x)) * maps[b, 3, y, x]
        torch.testing.assert_close(got[b:b + 1], expected)


def test_the_deconvnet_reads_the_picture_only_through_max_pooling() -> None:
    model = small_model()
    inputs = model.prepare([pictures().picture(i) for i in range(2)])
    centre = torch.tensor([4, 4]), torch.tensor([4, 4])
    assert deconvnet_ignores_pictures(model, inputs, "relu1", 0, *centre)  # below the max-pool
    ys, xs = _strongest(model, inputs, "relu2", 0)
    assert not deconvnet_ignores_pictures(model, inputs, "relu2", 0, ys, xs)


def test_auto_uses_the_deconvnet_after_max_pooling_and_crops_to_the_patch_box(scanned) -> None:
    figure = top_projections(scanned, "relu2", [0, 3], k=3, model=small_model())
    assert figure.method == "deconvnet" and not figure.image_independent and not figure.identical
    assert figure.projections.shape[:2] == (2, 3) and figure.projections.shape[-1] == figure.patches.patches.shape[-1]
    assert "switches" in figure.note
    model = small_model()
    for row, channel in enumerate([0, 3]):
        images = figure.patches.images[row]
        inputs = model.prepare([scanned.pictures.picture(int(i)) for i in images])
        ys, xs = figure.patches.positions[row, :, 0], figure.patches.positions[row, :, 1]
        full = project_units(model, inputs, "relu2", channel, ys, xs, method="deconvnet")
        torch.testing.assert_close(full.flatten(1).abs().sum(1), figure.projections[row].flatten(1).abs().sum(1))
        for j, box in enumerate(figure.patches.boxes[row]):  # the same box as the patch, at its size (8 px here)
            torch.testing.assert_close(figure.projections[row, j], crop_box(full[j], box, 8))
    picture = figure.picture()
    assert picture.size[0] > 300 and picture.size[1] > 100


def test_auto_falls_back_to_guided_backprop_where_the_deconvnet_ignores_the_picture(scanned) -> None:
    figure = top_projections(scanned, "relu1", [2], k=4, model=small_model())
    assert figure.method == "guided_backprop" and figure.image_independent
    assert figure.identical and "filter" in figure.note  # first layer: every projection is the filter
    forced = top_projections(scanned, "relu2", [0], k=2, method="deconvnet", model=small_model())
    assert forced.method == "deconvnet"
    with pytest.raises(ValueError, match="unknown projection"):
        top_projections(scanned, "relu2", [0], method="lrp", model=small_model())


def test_crop_box_pads_with_zero_outside_the_input() -> None:
    values = torch.arange(16.0).view(1, 4, 4)
    crop = crop_box(values, torch.tensor([-1, -1, 2, 2]), 3)
    assert torch.equal(crop[0], torch.tensor([[0.0, 0, 0], [0, 0, 1], [0, 4, 5]]))


def test_a_forced_deconvnet_below_max_pooling_says_guided_backprop_would_show_the_picture(scanned) -> None:
    figure = top_projections(scanned, "relu1", [2], method="deconvnet", model=small_model())  # k: all 4 kept
    assert figure.image_independent and figure.identical
    assert "no max-pooling below relu1" in figure.note and "guided_backprop" in figure.note
