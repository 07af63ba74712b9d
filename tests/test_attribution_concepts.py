"""Concept relevance: channel relevances and conditional maps equal zennit-crp's, relevance maximisation over a scan
finds the pictures a brute-force search finds, and the concepts command draws its figure."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from convscope.attribution.concepts import concept_relevance, conditional_relevance
from convscope.attribution.lrp import LRP, model_composite, propagate
from convscope.models import Model, Preprocess
from convscope.targets import as_target

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 5))
    return Model(net.eval(), preprocess=Preprocess(resize=None, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3),
                 class_names=list("abcde"))


def test_concepts_equal_zennit_crp(model):
    pytest.importorskip("crp")
    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlusFlat

    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    found = concept_relevance(model, x, 2, "3", top=4)
    attribution = CondAttribution(copy.deepcopy(model.net))
    conditions = [{"y": [2], "3": [channel]} for channel in found.channels]
    theirs = attribution(x.repeat(len(conditions), 1, 1, 1).requires_grad_(True), conditions, EpsilonPlusFlat(),
                         record_layer=["3"])
    assert float((theirs.heatmap - found.maps.sum(1)).abs().max() / theirs.heatmap.abs().max()) <= 1e-5
    whole = attribution(x.clone().requires_grad_(True), [{"y": [2]}], EpsilonPlusFlat(), record_layer=["3"])
    per_channel = whole.relevances["3"].sum((2, 3))[0]
    assert torch.allclose(per_channel[found.channels], found.relevance, rtol=1e-5, atol=1e-7)
    assert found.channels == per_channel.argsort(descending=True)[:4].tolist()


def test_conditional_maps_of_all_channels_add_up_to_the_lrp_map(model):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    maps = conditional_relevance(model, x, 1, "5", range(16), batch_size=5)
    torch.testing.assert_close(maps.sum(0, keepdim=True), LRP(model)(x, 1), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="layer '5' has channels 0 … 15"):
        conditional_relevance(model, x, 1, "5", [3, 16])


def test_relevance_maximisation_finds_the_pictures_a_brute_force_search_finds(tmp_path):
    from scan_worker import pictures, small_model

    from convscope.attribution.relevance_maximisation import relevance_patches
    from convscope.scan import Scan

    small = small_model()
    result = Scan(small, ["relu2"], k=4).run(pictures(), tmp_path / "scan", batch_size=8, progress=False)
    found = relevance_patches(small, result, "relu2", [0, 3], 1, k=3, batch_size=5)
    pool = pictures()
    inputs = small.preprocess([pool.picture(i) for i in range(len(pool))])
    relevance = propagate(small, inputs, as_target(1, small), model_composite(small, "epsilon-plus-flat"),
                          record=["relu2"]).layers["relu2"]
    best = relevance[:, [0, 3]].flatten(2).amax(2).T  # [2 channels, N pictures]
    values = best.topk(3, dim=1).values
    torch.testing.assert_close(found.values, values)
    torch.testing.assert_close(best.gather(1, found.images), values)  # pictures 5 and 6 are identical: a tie
    assert found.patches.shape[:2] == (2, 3)
    with pytest.raises(ValueError, match="another model"):
        relevance_patches(small_model(seed=1), result, "relu2", [0], 1)


def test_concepts_command_writes_its_figure_and_refuses_a_bad_layer(tmp_path, capsys):
    from convscope.cli import main

    assert main(["concepts", "sample:chelsea", "--layer", "blocks.5", "--target", "tabby", "--top", "2",
                 "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["concepts_chelsea_blocks_5.png"]
    assert "of the layer's relevance" in capsys.readouterr().out
    assert main(["concepts", "sample:chelsea", "--layer", "blocks.55", "--out", str(tmp_path / "bad")]) == 2
    assert "blocks.55" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
