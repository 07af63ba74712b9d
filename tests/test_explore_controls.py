"""The explorer's controls through its API, in process: per-method settings and their budget, colour scales."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from test_explore_api import decoded, local_client, ok, refused  # noqa: E402

import convscope as cs  # noqa: E402
from convscope.explore import Explorer  # noqa: E402


@pytest.fixture(scope="module")
def client(lite0, tmp_path_factory):
    explorer = Explorer(lite0, cache=tmp_path_factory.mktemp("controls"))
    return local_client(explorer)


def test_each_method_offers_only_the_settings_it_takes(client) -> None:
    listed = {m["name"]: m["settings"] for m in ok(client, "/api/methods")["methods"]}
    assert set(listed["grad_cam"]) == {"layer"} and listed["grad_cam"]["layer"]["kind"] == "layer"
    assert set(listed["smooth_grad"]) == {"samples", "noise"} and listed["smooth_grad"]["samples"]["default"] == 50
    assert set(listed["integrated_gradients"]) == {"steps", "baseline"}
    assert set(listed["occlusion"]) == {"size", "stride"} and listed["occlusion"]["stride"]["default"] == 16
    assert listed["saliency"] == {} and "baseline" not in listed["gradient_shap"]  # its baseline is a batch


def test_settings_reach_the_method_and_are_checked(client, lite0) -> None:
    found = ok(client, "/api/explain", pic="sample:chelsea", method="grad_cam", target="281", layer="blocks.4")
    assert found["layer"] == "blocks.4" and found["settings"]["layer"] == "blocks.4"
    expected = cs.explain(lite0, cs.load_sample("chelsea"), "grad_cam", 281, layer="blocks.4").heat[0]
    heat = torch.tensor(list(decoded(found["heat"]).convert("L").getdata()), dtype=torch.float32).view(224, 224)
    assert found["heat_max"] == pytest.approx(float(expected.max()), rel=1e-4)
    assert (heat / 255 * found["heat_max"] - expected).abs().max() <= found["heat_max"] / 255  # 8-bit heat
    assert found["scale"] == {"cmap": "jet", "low": 0.0, "high": pytest.approx(found["heat_max"]),
                              "what": "over the picture"}
    smooth = ok(client, "/api/explain", pic="sample:chelsea", method="smooth_grad", samples=3, noise=0.2)
    assert smooth["settings"]["samples"] == 3 and smooth["settings"]["noise"] == 0.2
    assert smooth["scale"]["cmap"] == "gray"
    ig = ok(client, "/api/explain", pic="sample:chelsea", method="integrated_gradients", steps=4, baseline="0.5")
    assert ig["settings"]["baseline"] == 0.5 and ig["scale"]["cmap"] == "gray"
    signed = ok(client, "/api/explain", pic="sample:chelsea", method="guided_backprop")  # a signed gradient image
    assert signed["scale"]["cmap"] is None and signed["scale"]["low"] == -signed["scale"]["high"] < 0

    assert "no setting 'samples'" in refused(
        client, "/api/explain", pic="sample:chelsea", method="grad_cam", samples=4)
    assert "baseline 'white' is not black, mean" in refused(
        client, "/api/explain", pic="sample:chelsea", method="deep_lift", baseline="white")
    assert "noise must be between 0.0 and 1.0" in refused(
        client, "/api/explain", pic="sample:chelsea", method="smooth_grad", noise=3)
    assert "did you mean" in refused(client, "/api/explain", pic="sample:chelsea", method="grad_cam", layer="blocks4")


def test_settings_beyond_the_budget_are_refused(client) -> None:
    reason = refused(client, "/api/explain", pic="sample:chelsea", method="smooth_grad", samples=1601)
    assert "between 1 and 1600" in reason
    reason = refused(client, "/api/explain", pic="sample:chelsea", method="shapley_value_sampling", samples=40)
    assert "2,040 passes, more than the 1,600" in reason and "fewer samples" in reason
    reason = refused(client, "/api/explain", pic="sample:chelsea", method="occlusion", size=2, stride=1)
    assert "49,729 forward passes" in reason and "stride of at least 6" in reason


def test_colour_maps_for_the_bars(client) -> None:
    maps = ok(client, "/api/colormaps")
    assert len(maps["jet"]) == 256 and maps["gray"][0] == [0, 0, 0] and maps["gray"][255] == [255, 255, 255]


def test_scan_pictures_need_a_scan(client) -> None:
    assert "no scan is open" in refused(client, "/api/predict", pic="scan:1")


def test_channel_relevance_matches_the_library(client, lite0) -> None:
    """The ranking and a channel's conditional map are concept relevance propagation's (convscope.attribution)."""
    from convscope.attribution.concepts import concept_relevance

    ranked = ok(client, "/api/relevance", pic="sample:chelsea", layer="blocks.4", target="281")
    inputs = lite0.prepare([cs.load_sample("chelsea")])
    expected = concept_relevance(lite0, inputs, 281, "blocks.4", top=3)
    assert [row["channel"] for row in ranked["channels"][:3]] == expected.channels
    assert ranked["class"] == {"index": 281, "name": "tabby"} and ranked["count"] == 112
    assert ranked["channels"][0]["share"] == pytest.approx(float(expected.share[0]), rel=1e-4)
    best = expected.channels[0]
    one = ok(client, "/api/relevance/channel", pic="sample:chelsea", layer="blocks.4", channel=best, target="281")
    assert one["rank"] == 1 and one["of"] == 112 and one["relevance"] == pytest.approx(float(expected.relevance[0]),
                                                                                    rel=1e-4)
    summed = expected.maps[0].sum(0)
    assert one["scale"]["high"] == pytest.approx(float(torch.quantile(summed.abs().flatten(), 0.995)), rel=1e-4)
    assert decoded(one["map"]).size == (224, 224)
    assert "out of range" in refused(client, "/api/relevance/channel", pic="sample:chelsea", layer="blocks.4",
                                     channel=500)
    assert "unknown LRP composite" in refused(client, "/api/relevance", pic="sample:chelsea", layer="blocks.4",
                                              composite="magic")


def test_metrics_of_a_map_are_the_reports(client, lite0) -> None:
    """The explorer's metrics of Grad-CAM's map are those of convscope.analysis.metrics for the same picture."""
    from convscope.analysis.metrics.report import evaluate_methods

    found = ok(client, "/api/metrics", pic="sample:chelsea", method="grad_cam", target="281",
               metrics="pixel_flipping,random_logit,sparseness")
    inputs = lite0.prepare([cs.load_sample("chelsea")])
    expected = evaluate_methods(lite0, inputs, ["grad_cam"], ["pixel_flipping", "random_logit", "sparseness"],
                                target=281)
    values = {row["name"]: row for row in found["metrics"]}
    for name in ("pixel_flipping", "random_logit", "sparseness"):
        assert values[name]["value"] == pytest.approx(float(expected.values["grad_cam"][name][0]), rel=1e-5, abs=1e-9)
    assert values["pixel_flipping"]["direction"] == "lower" and values["sparseness"]["direction"] == "higher"
    assert values["random_logit"]["passes"] == (values["random_logit"]["value"] <= 0.5)
    assert "need object masks" in refused(client, "/api/metrics", pic="sample:chelsea", method="grad_cam",
                                          metrics="pointing_game")
    assert "unknown" in refused(client, "/api/metrics", pic="sample:chelsea", method="grad_cam", metrics="magic")
    assert "choose fewer metrics" in refused(client, "/api/metrics", pic="sample:chelsea", method="smooth_grad",
                                             samples=1600, metrics="avg_sensitivity")


def test_metrics_evaluate_the_map_shown_not_checks_lighter_one(client, lite0) -> None:
    """SmoothGrad's map in the explorer has 50 samples (its default), not `check`'s quick 16; the metrics follow."""
    from convscope.analysis.metrics.report import evaluate_methods

    found = ok(client, "/api/metrics", pic="sample:chelsea", method="smooth_grad", metrics="sparseness")
    inputs = lite0.prepare([cs.load_sample("chelsea")])
    shown, quick = (float(evaluate_methods(lite0, inputs, ["smooth_grad"], ["sparseness"], options={
        "smooth_grad": {"samples": n}}).values["smooth_grad"]["sparseness"][0]) for n in (50, 16))
    assert found["metrics"][0]["value"] == pytest.approx(shown) != pytest.approx(quick)
