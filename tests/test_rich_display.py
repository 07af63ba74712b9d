"""Results show themselves richly in Jupyter: tables for predictions and statistics, every image of an
explanation."""

from __future__ import annotations

import io
import re

import torch
from PIL import Image

from convscope.attribution import explain
from convscope.inspection import layer_statistics, predict
from convscope.render import html


def test_html_cells_are_escaped_and_numbers_readable():
    table = html.table(["name", "value"], [["<b>cat</b>", 0.123456], ["nan", float("nan")], ["shape", (3, 4)]],
                       right=(1,))
    assert "&lt;b&gt;cat&lt;/b&gt;" in table and ">0.123<" in table and ">–<" in table and ">3×4<" in table
    assert table.count("<tr>") == 4 and "text-align:right" in table
    assert html.Raw("<i>x</i>") in html.table(["a"], [[html.Raw("<i>x</i>")]])


def test_predictions_show_a_table_per_image(tiny_model):
    pictures = [torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    found = predict(tiny_model, pictures, k=2)
    shown = found._repr_html_()
    assert shown.count("<table") == 2 and "image 1" in shown
    for b in range(2):
        for name, p in zip(found.names[b], found.probabilities[b].tolist(), strict=True):
            assert f">{name}<" in shown and f">{p:.1%}<" in shown


def test_layer_statistics_show_one_row_per_layer(tiny_model):
    stats = layer_statistics(tiny_model, [torch.rand(3, 8, 8)], target=0)
    shown = stats._repr_html_()
    assert shown.count("<tr>") == len(stats.rows) + 1
    assert all(f">{row.layer}<" in shown for row in stats.rows)


def test_an_explanation_of_several_images_shows_them_all(tiny_model):
    pictures = [torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    result = explain(tiny_model, pictures, "saliency", [0, 1, 2])
    shown = result._repr_html_()
    assert len(re.findall(r"<img src='data:image/png;base64,", shown)) == 3
    single = Image.open(io.BytesIO(result.picture(0)._repr_png_()))
    every = Image.open(io.BytesIO(result._repr_png_()))
    assert every.size[1] >= 3 * single.size[1] and every.size[0] == single.size[0]


def test_occlusion_maps_pointing_occlusion_study_and_efros_leung_show_themselves(tiny_model):
    from convscope.analysis.localisation import OcclusionStudy, PointingResult
    from convscope.attribution import Occlusion
    from convscope.synthesis.efros_leung import efros_leung

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    found = Occlusion(tiny_model, size=4, stride=2).maps(x, 1)
    shown = Image.open(io.BytesIO(found._repr_png_()))
    assert shown.size[0] > 2 * 160 and shown.size[1] > 2 * 160  # two rows of two maps (score, top class)
    hits = {"saliency": torch.tensor([True, False, True, True]), "grad_cam": torch.tensor([True, True, True, True])}
    table = PointingResult(hits, 0.25, 15)._repr_html_()
    assert table.count("<tr>") == 3 and ">saliency<" in table and ">0.75<" in table and ">0.25<" in table
    study = OcclusionStudy(torch.tensor([True, False]), 0.3, 0.2, 0.01)._repr_html_()
    assert ">minimum on object<" in study and ">0.5<" in study and ">2<" in study
    texture = efros_leung(torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0)), 12, window=3,
                          progress=False, generator=torch.Generator().manual_seed(0))
    with Image.open(io.BytesIO(texture._repr_png_())) as picture:
        assert picture.size[0] > 2 * 192 and len(picture.convert("RGB").getcolors(1 << 20) or [0] * 99) > 50
