"""Figures say what their maps are: a deconvnet map that is the same for every picture says so, single-method
pictures carry method, target and a colour bar, and a colour scale is printed with digits that tell its ends apart."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from convscope.attribution import Deconvnet, GuidedBackprop, compare, explain
from convscope.attribution.figures import scaled
from convscope.attribution.picture_independence import NOTE, ignores_pictures
from convscope.cli import main
from convscope.render.colormaps import colorize
from convscope.render.scale import range_text, stretch, tiny_range_note

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def no_pooling(tiny_model):
    tiny_model.net.pool = nn.Identity()  # nothing left for the deconvnet to read the picture through
    return tiny_model


def test_the_deconvnet_without_max_pooling_ignores_the_picture_and_says_so(no_pooling, tiny_model):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert ignores_pictures(Deconvnet(no_pooling), x, 0)
    assert not ignores_pictures(GuidedBackprop(no_pooling), x, 0)
    result = explain(no_pooling, list(x), "deconvnet", "bright")
    assert result.ignores_pictures and result.note == f"Deconvnet: {NOTE}"
    assert explain(no_pooling, list(x), "guided_backprop", "bright").note is None


def test_with_max_pooling_the_deconvnet_reads_the_picture(tiny_model):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert not ignores_pictures(Deconvnet(tiny_model), x, 0)
    assert explain(tiny_model, list(x), "deconvnet", "bright").note is None


def test_compare_marks_the_picture_blind_column_and_warns(no_pooling, caplog):
    x = list(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    with caplog.at_level(logging.WARNING, logger="convscope"):
        tall = compare(no_pooling, x, ["deconvnet", "guided_backprop"], target="bright")
    assert any(NOTE in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convscope"):
        short = compare(no_pooling, x, ["guided_backprop", "guided_backprop"], target="bright")
    assert not caplog.records and tall.size[1] > short.size[1]  # the note is written under the figure


def test_explain_deconvnet_on_lite0_warns_and_writes_titled_pictures(tmp_path, capsys):
    main(["explain", "sample:chelsea", "--method", "deconvnet", "--out", str(tmp_path)])
    assert "same for every picture" in capsys.readouterr().err
    from PIL import Image

    for kind in ("map", "overlay"):
        [path] = tmp_path.glob(f"explain_chelsea_deconvnet_*{kind}_*.png")
        figure = Image.open(path)
        assert figure.size[1] > 224 + 60  # title above, colour bar and note below the 224-px map


def bar_row(picture, colours: torch.Tensor) -> bool:
    """True when some row of ``picture`` starts with the first and ends with the last of ``colours``."""
    array = np.asarray(picture.array).astype(int)
    first, last = (np.round(colours[:, i].numpy() * 255).astype(int) for i in (0, -1))
    return any(np.abs(row[0] - first).max() <= 2 and np.abs(row[-1] - last).max() <= 2 for row in array)


def test_single_method_pictures_have_a_title_and_a_colour_bar(tiny_model):
    result = explain(tiny_model, [torch.rand(3, 8, 8)], "grad_cam", "bright", layer="conv")
    ends = colorize(torch.tensor([[0.0, 1.0]]), "inferno")[:, 0]
    figure = result.map_figure()
    assert figure.size[1] > result.map_picture().size[1] + 40 and bar_row(figure, ends)
    assert not bar_row(result.map_picture(), ends)
    assert bar_row(result.overlay_figure(), colorize(torch.tensor([[0.0, 1.0]]), "jet")[:, 0])


def test_a_colour_scale_is_printed_with_digits_that_differ():
    assert range_text(0.99987, 1.0) == "0.9999–1.0000"  # "1.00–1.00" would hide the range
    assert range_text(0.51, 1.0) == "0.51–1.00"
    assert range_text(1.0, 1.0) == "constant 1"
    assert "stretched over all colours" in tiny_range_note(0.99987, 1.0)
    assert tiny_range_note(0.51, 1.0) is None and tiny_range_note(1.0, 1.0) is None
    values = torch.full((4, 4), 0.3)
    assert torch.equal(stretch(values, 0.3, 0.3), torch.full((4, 4), 0.5))  # one colour, the middle one


def test_the_occlusion_panels_label_a_tiny_range_and_draw_a_constant_one_in_one_colour():
    notes: list[str] = []
    shown, label = scaled(1 - 1e-5 * torch.arange(16.0).view(4, 4), "(a)", notes)
    assert label == "0.9998–1.0000" and notes and "(a) spans only" in notes[0]
    shown, label = scaled(torch.ones(4, 4), "(c)", notes)
    assert label == "constant 1" and torch.equal(shown, torch.full((4, 4), 0.5)) and len(notes) == 1


def test_explain_set_with_the_deconvnet_on_lite0_warns(tmp_path, capsys):
    main(["explain-set", "samples", "--method", "deconvnet", "--limit", "2", "--batch-size", "2",
          "--out", str(tmp_path / "maps")])
    assert "same for every picture" in capsys.readouterr().err
