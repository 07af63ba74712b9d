"""Top patches at a saturating layer: ties at the ceiling are said to be arbitrary, and blank projections
of saturated units are explained instead of being drawn as if they meant something."""

from __future__ import annotations

import torch

from convscope.models import Preprocess
from convscope.scan.patches import TopPatches, layer_ceiling
from convscope.scan.projections import TopProjections
from convscope.scan.receptive_field import ReceptiveField


def patches(values: list[list[float]], ceiling: float | None) -> TopPatches:
    n, k = len(values), len(values[0])
    field = ReceptiveField.whole("bn1", (8, 8), (4, 4), n)
    boxes = torch.tensor([0, 0, 8, 8]).expand(n, k, 4)
    return TopPatches("bn1", list(range(n)), torch.tensor(values), torch.zeros(n, k, dtype=torch.long),
                      torch.zeros(n, k, 2, dtype=torch.long), boxes, torch.rand(n, k, 3, 8, 8), field,
                      [[f"p{j}" for j in range(k)] for _ in range(n)], None,
                      Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)), ceiling)


def test_the_ceiling_is_the_layer_maximum_when_many_units_reach_it():
    assert layer_ceiling(torch.tensor([[6.0, 6.0, 5.0], [6.0, 2.0, 1.0]])) == 6.0
    assert layer_ceiling(torch.tensor([[7.5, 6.0, 5.0], [6.5, 2.0, 1.0]])) is None


def test_ties_at_the_ceiling_are_said_to_be_arbitrary_and_framed():
    saturated = patches([[6.0, 6.0, 6.0], [5.0, 4.0, 3.0], [2.5, 2.5, 1.0]], ceiling=6.0)
    assert saturated.ties() == [(0, 3, 6.0), (2, 2, 2.5)]
    note = saturated.note
    assert "tied at 6" in note and "#0 (3 of 3)" in note and "arbitrary" in note and "#2 (2 of 3)" in note
    plain = patches([[6.0, 5.0, 4.0], [5.0, 4.0, 3.0], [2.5, 2.0, 1.0]], ceiling=None)
    assert plain.note is None
    assert saturated.picture().size[1] > plain.picture().size[1]  # the note is written under the figure


def test_blank_projections_of_saturated_units_are_explained():
    found = patches([[6.0, 6.0, 6.0], [5.0, 4.0, 3.0]], ceiling=6.0)
    projections = torch.rand(2, 3, 3, 8, 8)
    projections[0] = 0  # guided backprop through ReLU6 at 6: no gradient
    figure = TopProjections(found, projections, "guided_backprop", True)
    assert figure.blank()[0].all() and not figure.blank()[1].any()
    blank = [note for note in figure.notes if "blank" in note]
    assert blank and "3 of 6 projections are blank" in blank[0] and "ceiling 6" in blank[0]
    assert not figure.identical  # blank maps are not "one map"
    figure.picture()
