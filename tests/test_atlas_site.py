"""The atlas's static site and graph: pages from a hand-made atlas, every link resolving, a half-written atlas
saying so, the graph's numbers checked by hand and against PyTorch's FLOP counter, the explorer's --atlas."""

from __future__ import annotations

import html
import http.client
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
from cli_runs import assert_refused, run
from fake_atlas import INPUT, AtlasNet, make_atlas
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convscope.atlas.graph import model_graph
from convscope.atlas.site import write_site
from convscope.models import load_model


class Links(HTMLParser):
    """Every href and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.found += [value for name, value in attrs if name in ("href", "src") and value]


def links(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def site(root: Path, **options) -> Path:
    out = make_atlas(root / "atlas", **options)
    write_site(out, AtlasNet(), INPUT)
    return out


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> Path:
    return site(tmp_path_factory.mktemp("complete"))


def text(page: Path) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))))


def test_every_page_exists_and_every_link_resolves_inside_the_folder(complete) -> None:
    pages = sorted(complete.rglob("*.html"))
    expected = {"index.html", *(f"layers/{n}/index.html" for n in ("blocks.0", "blocks.1")),
                *(f"layers/blocks.0/channels/{c}.html" for c in range(8)),
                *(f"layers/blocks.1/channels/{c}.html" for c in range(12))}
    assert {p.relative_to(complete).as_posix() for p in pages} == expected
    checked = 0
    for page in pages:
        for link in links(page):
            assert not urlsplit(link).scheme or link.startswith("data:"), f"{page}: {link} is not relative"
            if link.startswith("data:"):
                continue
            target = (page.parent / unquote(urlsplit(link).path)).resolve()
            assert target.is_file(), f"{page.relative_to(complete)} links to {link}, which does not exist"
            assert complete.resolve() in target.parents
            checked += 1
    assert checked > 1000
    assert not list(complete.rglob(".*.tmp"))  # no temporary file left


def test_the_index_shows_the_model_the_layers_and_the_graph(complete) -> None:
    index = (complete / "index.html").read_text()
    assert 'href="layers/blocks.0/index.html"' in index and 'href="layers/blocks.1/index.html"' in index
    graph = index[index.index('id="graph"'):]
    assert graph.index('data-node="stem"') < graph.index('data-node="blocks.0"') < graph.index('data-node="pool"')
    assert "not complete" not in index and "untrained" not in index
    graph_json = json.loads((complete / "graph.json").read_text())
    assert [n["name"] for n in graph_json["nodes"]] == ["stem", "blocks.0", "blocks.1", "pool", "classifier"]


def test_a_layer_page_is_a_grid_in_the_layers_order_with_the_dead_marked(complete) -> None:
    page = (complete / "layers/blocks.1/index.html").read_text()
    order = json.loads((complete / "layers/blocks.1/layer.json").read_text())["order"]
    assert [int(c) for c in re.findall(r'data-channel="(\d+)"', page)] == order
    dead = [int(c) for c in re.findall(r'class="cell dead" href="channels/\d+.html" data-channel="(\d+)"', page)]
    assert sorted(dead) == [5, 9]
    assert "12 channels, 2 dead" in text(complete / "layers/blocks.1/index.html")


def test_a_channel_page_shows_every_part(complete) -> None:
    page = complete / "layers/blocks.0/channels/2.html"
    found = links(page)
    images = [link for link in found if link.endswith(".png")]
    assert sum("2_facet" in i for i in images) == 4
    for kind in ("top", "bottom"):
        assert sum(re.search(rf"2_{kind}\d_projection", i) is not None for i in images) == 9
        assert sum(re.search(rf"2_{kind}\d\.png", i) is not None for i in images) == 9
    assert any(i.endswith("2_vis.png") for i in images) and any(i.endswith("2_negative.png") for i in images)
    words = text(page)
    for part in ("Feature visualisation", "facets: other things", "excite it most", "excite it least", "Top classes",
                 "espresso", "active fraction", "Drives", "Driven by", "what excites it most (activation 6)",
                 "its deconvnet projection to the input", "strength by weights"):
        assert part in words, part
    assert 'title="activation 1.9"' in page.read_text()  # the second top patch's activation
    # channel 2 of blocks.0 drives channels 6, 7, 8 of blocks.1 (see fake_atlas): links to their pages
    assert [link for link in found if "channels/" in link and link.endswith(".html") and "blocks.1" in link] == [
        f"../../../layers/blocks.1/channels/{c}.html" for c in (6, 7, 8)]


def test_a_half_written_atlas_says_so_then_is_completed(tmp_path) -> None:
    out = site(tmp_path, complete=False, missing={"blocks.1": {2, 7}})
    words = text(out / "index.html")
    assert "not complete" in words and "10 of 12 channels done" in words
    assert "blocks.0" in words and re.search(r"blocks\.0 8×16×16 8 1 complete", words)
    assert "not computed yet" in text(out / "layers/blocks.1/channels/7.html")
    assert "10 of 12 channels computed" in text(out / "layers/blocks.1/index.html")
    assert "not complete" in text(out / "layers/blocks.0/channels/1.html")  # the banner on every page
    make_atlas(out)  # the engine finishes the run: every channel, complete
    write_site(out, AtlasNet(), INPUT)
    assert "not complete" not in text(out / "index.html") and "10 of 12" not in text(out / "index.html")
    assert "not computed yet" not in text(out / "layers/blocks.1/channels/7.html")


def test_an_atlas_of_chosen_channels_says_so_and_shows_only_those(tmp_path) -> None:
    """A run with --channels that made every channel it chose is not "interrupted": its pages say the channels
    were chosen, and the layer shows those, not a grid of squares never to be computed."""
    out = make_atlas(tmp_path / "atlas", complete=False, missing={"blocks.1": set(range(12)) - {1, 4, 6}})
    atlas = json.loads((out / "atlas.json").read_text())
    atlas["layers"][1]["selected"] = [1, 4, 6]
    (out / "atlas.json").write_text(json.dumps(atlas))
    write_site(out, AtlasNet(), INPUT)
    words = text(out / "index.html")
    assert "chosen channels only" in words and "not complete" not in words
    assert re.search(r"blocks\.1 12×8×8 12 \d+ 3 chosen channels", words)
    assert "Chosen channels of 2 layers (11 channels)" in words
    layer = out / "layers/blocks.1/index.html"
    assert re.search(r"a selection: 3 of 12 channels \(chosen with --channels \)", text(layer))
    assert re.findall(r'data-channel="(\d+)"', layer.read_text()) == ["1", "4", "6"]
    assert "not computed yet" not in text(layer)
    page = (out / "layers/blocks.1/channels/4.html").read_text()
    assert 'rel="prev" href="1.html"' in page and 'rel="next" href="6.html"' in page
    assert "not computed yet" in text(out / "layers/blocks.1/channels/7.html")
    atlas["layers"][1]["selected"] = [1, 4, 6, 7]  # a chosen channel still to do: the run was interrupted
    (out / "atlas.json").write_text(json.dumps(atlas))
    write_site(out, AtlasNet(), INPUT)
    assert "not complete" in text(out / "index.html") and "3 of 12 channels done" in text(out / "index.html")
    assert len(re.findall(r'data-channel="', (out / "layers/blocks.1/index.html").read_text())) == 12


def test_an_untrained_model_is_said_on_every_page(tmp_path) -> None:
    out = site(tmp_path, trained=False)
    for page in out.rglob("*.html"):
        assert "untrained model (random weights)" in text(page), page


def test_a_folder_that_is_no_atlas_is_refused_and_nothing_written(tmp_path) -> None:
    (tmp_path / "atlas.json").write_text(json.dumps({"format": "something/1", "layers": []}))
    with pytest.raises(ValueError, match="is not a convscope atlas"):
        write_site(tmp_path, AtlasNet(), INPUT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atlas.json"]


def test_text_is_escaped_and_pictures_outside_the_atlas_are_not_linked(tmp_path) -> None:
    out = make_atlas(tmp_path / "atlas")
    path = out / "layers/blocks.0/channels/1.json"
    data = json.loads(path.read_text())
    data["top_classes"][0]["class"] = "<script>alert(1)</script>"
    data["images"]["vis"] = "../../outside.png"
    (tmp_path / "outside.png").write_bytes((out / data["images"]["negative"]).read_bytes())
    path.write_text(json.dumps(data))
    write_site(out, AtlasNet(), INPUT)
    page = (out / "layers/blocks.0/channels/1.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "outside.png" not in page and "feature visualisation: not computed yet" in page


def test_a_negative_visualisation_not_asked_for_is_left_out(tmp_path) -> None:
    out = make_atlas(tmp_path / "atlas")
    path = out / "layers/blocks.0/channels/1.json"
    data = json.loads(path.read_text())
    data["images"]["negative"] = None
    path.write_text(json.dumps(data))
    write_site(out, AtlasNet(), INPUT)
    assert "inhibits" not in text(out / "layers/blocks.0/channels/1.html")
    assert "negative: what inhibits it most" in text(out / "layers/blocks.0/channels/2.html")
    layer = text(out / "layers/blocks.0/index.html")
    assert "similar: by correlation of the channels' activations" in layer and "links drives: weights" in layer


def test_pages_are_rewritten_only_when_they_change(complete) -> None:
    page = complete / "layers/blocks.0/channels/0.html"
    before = page.stat().st_mtime_ns
    write_site(complete, AtlasNet(), INPUT)
    assert page.stat().st_mtime_ns == before


# the graph ---------------------------------------------------------------------------------------------------------

def hand_net() -> nn.Sequential:
    """conv 2→4 (3×3, stride 2, pad 1) → ReLU → conv 4→6 (3×3, groups 2, pad 1) → pool → flatten → linear 6→5."""
    return nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1, groups=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))


def test_graph_numbers_by_hand() -> None:
    graph = model_graph(hand_net(), [2, 8, 8])
    nodes = {n["name"]: n for n in graph["nodes"]}
    assert list(nodes) == ["0", "1", "2", "3", "4", "5"]
    assert nodes["0"]["output_shape"] == [4, 4, 4] and nodes["2"]["output_shape"] == [6, 4, 4]
    assert nodes["5"]["output_shape"] == [5]
    # multiply-adds: 64 outputs × 2 inputs × 9; 96 outputs × (4 / 2 groups) × 9; 5 × 6
    assert [nodes[k]["flops"] for k in "012345"] == [64 * 2 * 9, 0, 96 * 2 * 9, 0, 0, 30]
    assert graph["flops"] == 1152 + 1728 + 30
    # parameters: 4·2·9 + 4; 6·2·9 + 6; 6·5 + 5
    assert [nodes[k]["parameters"] for k in "012345"] == [76, 0, 114, 0, 0, 35] and graph["parameters"] == 225
    # receptive fields: 3 px every 2; then 3 + (3 − 1)·2 = 7 px every 2; pooled: the whole input
    assert nodes["0"]["receptive_field"] == {"size": [3, 3], "stride": [2, 2]}
    assert nodes["2"]["receptive_field"] == {"size": [7, 7], "stride": [2, 2]}
    assert nodes["3"]["receptive_field"] == {"whole_input": True}


def test_graph_leaves_the_model_as_found() -> None:
    net = hand_net().train()
    net[1].inplace = True
    model_graph(net, [2, 8, 8])
    assert net.training and net[1].inplace
    assert not net._forward_hooks and all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def reference_multiply_adds(net: nn.Module, size: list[int]) -> int:
    """PyTorch's own count (convolutions and matrix products, 2 FLOPs per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(torch.zeros(1, *size))
    return counter.get_total_flops() // 2


def test_graph_of_the_fashion_cnn() -> None:
    net = load_model("fashion_cnn", device="cpu").net
    graph = model_graph(net, [1, 28, 28], ["conv2"])
    nodes = {n["name"]: n for n in graph["nodes"]}
    assert graph["flops"] == reference_multiply_adds(net, [1, 28, 28])
    assert nodes["conv1"]["flops"] == 32 * 28 * 28 * 1 * 7 * 7
    assert graph["parameters"] == sum(p.numel() for p in net.parameters()) == 391_690
    # 7 → pool 8 (stride 2) → 8 + 2·2 = 12 → pool 14 (stride 4) → 14 + 2·4 = 22 → pool 26 (stride 8)
    assert [nodes[n]["receptive_field"]["size"][0] for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "pool3")] \
        == [7, 8, 12, 14, 22, 26]
    assert nodes["pool3"]["receptive_field"]["stride"] == [8, 8]
    assert nodes["fc7"]["receptive_field"] == {"whole_input": True}


def test_graph_of_lite0(lite0) -> None:
    graph = model_graph(lite0, [3, 224, 224], ["blocks.2", "blocks.4.1"])
    names = [n["name"] for n in graph["nodes"]]
    assert names[:3] == ["conv_stem", "bn1", "blocks.0"] and names[-1] == "classifier"
    assert {"blocks.2", "blocks.4.0", "blocks.4.1", "blocks.4.2"} <= set(names) and "blocks.4" not in names
    assert next(n for n in graph["nodes"] if n["name"] == "blocks.1")["holds"] == "2 × InvertedResidual"
    assert graph["flops"] == reference_multiply_adds(lite0.net, [3, 224, 224]) == 385_187_552  # timm: 0.39 G MACs
    assert graph["parameters"] == 4_652_008  # timm's efficientnet_lite0: 4.65 M
    assert sum(n["parameters"] for n in graph["nodes"]) == graph["parameters"]
    fields = {n["name"]: n["receptive_field"] for n in graph["nodes"]}
    assert fields["conv_stem"] == {"size": [3, 3], "stride": [2, 2]} and fields["blocks.2"]["stride"] == [8, 8]


def test_graph_refuses_a_bad_input_size() -> None:
    with pytest.raises(ValueError, match=r"\[C,H,W\]"):
        model_graph(hand_net(), [2, 0, 8])
    assert model_graph(hand_net(), [8, 8])["input_size"] == [2, 8, 8]  # C from the first convolution


# the explorer ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("given", ["empty folder", "file", "missing", "scan folder"])
def test_explore_refuses_a_folder_that_is_no_atlas(given, tmp_path, capsys) -> None:
    path = {"empty folder": tmp_path, "file": tmp_path / "a.txt", "missing": tmp_path / "nothing",
            "scan folder": tmp_path / "scan"}[given]
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "atlas.json").write_text(json.dumps({"format": "convscope-scan/1"}))
    assert_refused(*run(["explore", "--atlas", str(path)], capsys), r"is not a convscope atlas.*convscope atlas")


@pytest.fixture(scope="module")
def explorer_client(complete):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from convscope.explore import Explorer, create_app

    explorer = Explorer(load_model("fashion_cnn", device="cpu"), atlas=complete, token="secret")
    with TestClient(create_app(explorer), base_url="http://127.0.0.1") as client:
        yield client


def test_the_explorer_serves_the_atlas_behind_its_token(explorer_client, complete) -> None:
    token = {"Authorization": "token secret"}
    answer = explorer_client.get("/atlas/layers/blocks.0/channels/2.html", headers=token)
    assert answer.status_code == 200 and answer.text == (complete / "layers/blocks.0/channels/2.html").read_text()
    assert explorer_client.get("/atlas/", headers=token).text == (complete / "index.html").read_text()
    assert explorer_client.get("/atlas/index.html").status_code == 403  # no token
    assert explorer_client.post("/atlas/index.html", headers=token).status_code in (403, 405)
    info = explorer_client.get("/api/info", headers=token).json()
    assert info["atlas"] == {"blocks.0": 8, "blocks.1": 12}


def test_the_explorer_refuses_paths_out_of_the_atlas(explorer_client, complete, tmp_path) -> None:
    (complete.parent / "secret.txt").write_text("private")
    (complete / "link.txt").symlink_to(complete.parent / "secret.txt")
    try:
        token = {"Authorization": "token secret"}
        for path in ("/atlas/../secret.txt", "/atlas/%2e%2e/secret.txt", "/atlas/layers/..%2f..%2fsecret.txt",
                     "/atlas/link.txt"):
            answer = explorer_client.get(path, headers=token)
            assert answer.status_code == 404 and "private" not in answer.text, path
    finally:
        (complete / "link.txt").unlink()


def test_a_raw_dot_dot_request_is_refused(complete) -> None:
    """``..`` sent as is on the wire (no client normalising it), to the explorer run by uvicorn."""
    pytest.importorskip("uvicorn")
    from test_explore_api import serving

    from convscope.explore import Explorer, create_app

    (complete.parent / "secret.txt").write_text("private")
    explorer = Explorer(load_model("fashion_cnn", device="cpu"), atlas=complete, token="secret")
    with serving(create_app(explorer)) as url:
        host, port = urlsplit(url).hostname, urlsplit(url).port
        for path in ("/atlas/../secret.txt", "/atlas/layers/../../secret.txt", "/atlas/index.html"):
            connection = http.client.HTTPConnection(host, port, timeout=30)
            connection.putrequest("GET", path, skip_accept_encoding=True)
            connection.putheader("Authorization", "token secret")
            connection.endheaders()
            answer = connection.getresponse()
            body = answer.read().decode(errors="replace")
            connection.close()
            if path == "/atlas/index.html":
                assert answer.status == 200 and "Layers in this atlas" in body
            else:
                assert answer.status == 404 and "private" not in body, (path, answer.status)


def test_a_graph_that_cannot_be_made_is_said_and_the_pages_are_written(tmp_path) -> None:
    out = make_atlas(tmp_path / "atlas")
    write_site(out, AtlasNet(), [3, 0, 32])  # an input size the model cannot take
    assert "The graph could not be drawn: ValueError: the input size is [C,H,W]" in text(out / "index.html")
    assert (out / "layers/blocks.1/channels/4.html").is_file() and not (out / "graph.json").exists()
    write_site(out, AtlasNet(), None)  # the atlas's own input size
    assert 'id="graph"' in (out / "index.html").read_text() and (out / "graph.json").is_file()


def test_a_damaged_layer_entry_is_refused_in_one_line(tmp_path) -> None:
    out = make_atlas(tmp_path / "atlas")
    atlas = json.loads((out / "atlas.json").read_text())
    del atlas["layers"][1]["channels"]
    (out / "atlas.json").write_text(json.dumps(atlas))
    with pytest.raises(ValueError, match="is damaged: a layer without its name and channel count"):
        write_site(out, AtlasNet(), INPUT)


def test_class_bars_are_longest_for_the_top_class_also_when_means_are_negative() -> None:
    from convscope.atlas.pages import Site

    def widths(means: list[float]) -> list[int]:
        page = Site.classes_html([{"class": str(n), "mean": m} for n, m in enumerate(means)])
        return [int(w) for w in re.findall(r"width:(\d+)%", page)]

    assert widths([2.0, 1.0, 0.5]) == [100, 50, 25]
    assert widths([-0.5, -0.6, -1.0]) == [100, 80, 0]


def test_a_trained_model_without_a_weights_file_shows_its_own_weights(tmp_path) -> None:
    out = make_atlas(tmp_path / "atlas")
    atlas = json.loads((out / "atlas.json").read_text())
    atlas["weights"] = None  # an embedded model: trained, no file named
    (out / "atlas.json").write_text(json.dumps(atlas))
    write_site(out, AtlasNet(), INPUT)
    words = text(out / "index.html")
    assert "weights the model's own" in words and "random" not in words
