"""The explorer's API, in process: every endpoint, every refused request, the cache, the token, the worker."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

import convscope as cs  # noqa: E402
from convscope.explore import Explorer, create_app  # noqa: E402
from convscope.explore.jobs import CHEAP, INTERACTIVE, Cancelled, ResultCache, Worker  # noqa: E402
from convscope.explore.server import check_address  # noqa: E402

LOCAL = "http://127.0.0.1"
OWN = {"X-Convscope-Request": "1"}  # what the explorer's own page sends with every request


def local_client(explorer: Explorer) -> TestClient:
    """A client of ``explorer``'s app on loopback that marks its requests as the explorer's page does."""
    return TestClient(create_app(explorer), base_url=LOCAL, headers=OWN)


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 in a thread; yields its URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(10)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def make_folder(root):
    """A folder with two photos (one in a sub-folder), a text file named .png, a note, and a link out of it."""
    folder = root / "photos"
    (folder / "cats").mkdir(parents=True)
    chelsea = Image.fromarray((cs.load_sample("chelsea").permute(1, 2, 0) * 255).byte().numpy())
    chelsea.resize((160, 120)).save(folder / "cats" / "chelsea.png")
    Image.fromarray((cs.load_sample("coffee").permute(1, 2, 0) * 255).byte().numpy()).resize((150, 100)).save(
        folder / "coffee.jpg")
    (folder / "fake.png").write_text("not a picture")
    (folder / "notes.txt").write_text("hello")
    outside = root / "secret.png"
    chelsea.resize((40, 30)).save(outside)
    (folder / "link.png").symlink_to(outside)
    return folder


def scan_set(root):
    """Six small photos in two labelled folders, for a scan."""
    for label, names in {"living": ("chelsea", "astronaut", "camera"), "things": ("coffee", "rocket", "china")}.items():
        (root / "set" / label).mkdir(parents=True)
        for name in names:
            pixels = (cs.load_sample(name).permute(1, 2, 0) * 255).byte().numpy()
            Image.fromarray(pixels).resize((64, 64)).save(root / "set" / label / f"{name}.png")
    return root / "set"


@pytest.fixture(scope="module")
def setup(lite0, tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    folder = make_folder(root)
    from convscope.data import ImageFolder

    scan = cs.Scan(lite0, ["blocks.2"], k=3).run(ImageFolder(scan_set(root)), root / "scan")
    explorer = Explorer(lite0, [folder], scan=scan.folder, cache=root / "cache")
    client = local_client(explorer)
    return explorer, client, folder


def ok(client, path, **params):
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def refused(client, path, status=400, **params) -> str:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_info_pictures_and_classes(setup) -> None:
    _, client, _ = setup
    info = ok(client, "/api/info")
    assert info["model"] == "efficientnet_lite0" and info["classes"] == 1000 and info["scan"]["same_model"]
    ids = [p["id"] for p in ok(client, "/api/pictures")["pictures"]]
    assert "sample:chelsea" in ids and "file:0/cats/chelsea.png" in ids and "file:0/coffee.jpg" in ids
    assert "file:0/link.png" not in ids and "file:0/notes.txt" not in ids  # the link leads out; not a picture
    assert ok(client, "/api/classes")["classes"][281] == "tabby"
    picture = client.get("/api/picture.png", params={"pic": "file:0/coffee.jpg"})
    assert picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size == (224, 224)
    assert "/api/explain" in ok(client, "/openapi.json")["paths"]
    assert client.get("/").status_code == 200 and "convscope" in client.get("/").text
    assert "text/javascript" in client.get("/static/app.js").headers["content-type"]


def test_predict_matches_the_library(setup, lite0) -> None:
    _, client, _ = setup
    got = ok(client, "/api/predict", pic="sample:chelsea", k=3)
    expected = cs.predict(lite0, cs.load_sample("chelsea"), k=3)
    assert [c["index"] for c in got["top"]] == expected.indices[0].tolist()
    assert got["top"][0]["probability"] == pytest.approx(float(expected.probabilities[0, 0]), abs=1e-6)


def test_explain_is_the_library_map_and_is_cached(setup, lite0) -> None:
    explorer, client, _ = setup
    first = ok(client, "/api/explain", pic="sample:chelsea", method="grad_cam", target="tabby")
    assert first["label"].startswith("tabby") and first["layer"] == "bn2" and not first["cached"]
    expected = cs.explain(lite0, cs.load_sample("chelsea"), "grad_cam", "tabby").overlay()
    assert (torch.tensor(list(decoded(first["image"]).convert("RGB").getdata())).view(224, 224, 3).numpy()
            == expected.array).all()
    again = ok(client, "/api/explain", pic="sample:chelsea", method="grad_cam", target="281")  # same class by index
    assert again["cached"] and again["image"] == first["image"]
    other = ok(client, "/api/explain", pic="sample:chelsea", method="grad_cam", target="espresso")
    assert not other["cached"] and other["image"] != first["image"]
    on_file = ok(client, "/api/explain", pic="file:0/coffee.jpg", method="saliency")
    assert on_file["style"] == "saliency" and decoded(on_file["map"]).size == (224, 224)
    occluded = ok(client, "/api/explain", pic="sample:coffee", method="occlusion", size=112, stride=112)
    assert occluded["settings"]["size"] == 112 and occluded["settings"]["stride"] == 112


def test_live_occlusion_agrees_with_the_occlusion_method(setup, lite0) -> None:
    _, client, _ = setup
    inputs = lite0.prepare([cs.load_sample("chelsea")])
    maps = cs.Occlusion(lite0, size=48, stride=176).maps(inputs, 282)  # corners at 0 and 176
    for (row, col), (y, x) in {(0, 0): (0, 0), (0, 1): (0, 176), (1, 1): (176, 176)}.items():
        got = ok(client, "/api/occlude", pic="sample:chelsea", x=x, y=y, size=48, target="282")
        assert got["probability"] == pytest.approx(float(maps.score[0, row, col]), abs=1e-5)
        assert got["clean_probability"] == pytest.approx(float(maps.clean_score[0]), abs=1e-5)
        assert got["top"][0]["index"] == int(maps.top_class[0, row, col])


def test_uploads(setup) -> None:
    _, client, _ = setup
    data = png_bytes(Image.new("RGB", (64, 48), (200, 30, 30)))
    answer = client.post("/api/upload", files={"file": ("red.png", data, "image/png")})
    assert answer.status_code == 200, answer.text
    assert ok(client, "/api/predict", pic=answer.json()["id"], k=1)["top"][0]["probability"] > 0
    bad = client.post("/api/upload", files={"file": ("x.png", b"<html>not a picture</html>", "image/png")})
    assert bad.status_code == 400 and "cannot read" in bad.json()["error"]
    huge = png_bytes(Image.new("1", (8000, 7000)))  # 56 megapixels, a small file
    assert len(huge) < 20 * 2**20
    big = client.post("/api/upload", files={"file": ("big.png", huge, "image/png")})
    assert big.status_code == 400 and "megapixels" in big.json()["error"]
    heavy = client.post("/api/upload", files={"file": ("heavy.png", b"\0" * (21 * 2**20), "image/png")})
    assert heavy.status_code == 413 and "20 MB" in heavy.json()["error"]
    assert client.post("/api/upload").status_code == 422
    assert ok(client, "/api/info")["model"]  # the server still answers


def test_large_pictures_are_kept_small(tmp_path) -> None:
    from convscope.explore import pictures

    store = pictures.PictureStore([], short_side=100)
    wide = store.add_upload(png_bytes(Image.new("RGB", (1000, 450), (0, 90, 200))), "wide.png")
    assert tuple(wide.pixels.shape) == (3, 113, 250)  # shrunk by 4 while decoded (450 / 4 rounded up)
    small = store.add_upload(png_bytes(Image.new("RGB", (190, 120), (9, 9, 9))), "small.png")
    assert tuple(small.pixels.shape) == (3, 120, 190)  # under twice the working size: as it is
    store._decoded.limit = 3 * 120 * 190 * 4  # room for the small one only
    store._decoded.keep(small.id, small)
    assert list(store._decoded) == [small.id] and store._decoded.total == small.pixels.numel() * 4
    again = store.load(wide.id)  # decoded again from the upload's bytes
    assert again.digest == wide.digest and torch.equal(again.pixels, wide.pixels)


def test_decoding_does_not_hold_up_the_server(setup, monkeypatch) -> None:
    from convscope.explore import pictures

    explorer, _, _ = setup
    entered, release, answered = threading.Event(), threading.Event(), threading.Event()
    decode = pictures.load_image_bytes

    def slow(*args, **options):
        entered.set()
        release.wait(20)
        return decode(*args, **options)

    monkeypatch.setattr(pictures, "load_image_bytes", slow)
    data = png_bytes(Image.new("RGB", (30, 20), (1, 2, 3)))
    with local_client(explorer) as client:  # one event loop for all its requests, as a server has
        uploading = threading.Thread(target=lambda: client.post("/api/upload", files={"file": ("s.png", data)}))
        uploading.start()
        try:
            assert entered.wait(20)
            asking = threading.Thread(target=lambda: ok(client, "/api/info") and answered.set())
            asking.start()
            assert answered.wait(10)  # answered while the picture decodes
        finally:
            release.set()
            uploading.join(20)


@pytest.mark.parametrize(("pic", "words"), [
    ("file:0/../../secret.png", "no '..'"),
    ("file:0/link.png", "outside the folder"),
    ("file:0//etc/passwd", "no '..', no absolute"),
    ("file:0/notes.txt", "not a picture file"),
    ("file:0/fake.png", "cannot read"),
    ("file:0/missing.png", "no picture"),
    ("file:7/a.png", "no folder number"),
    ("/etc/passwd", "unknown picture id"),
    ("sample:../../etc", "unknown bundled photo"),
    ("upload:123", "no upload"),
])
def test_pictures_outside_the_named_folders_are_refused(setup, pic, words) -> None:
    _, client, _ = setup
    assert words in refused(client, "/api/predict", pic=pic)


def test_malformed_requests_get_clear_4xx(setup) -> None:
    _, client, _ = setup
    assert "pic" in refused(client, "/api/predict", 422)
    assert "x" in refused(client, "/api/occlude", 422, pic="sample:chelsea", x=-1, y=0)
    assert "k" in refused(client, "/api/predict", 422, pic="sample:chelsea", k="many")
    assert "unknown method" in refused(client, "/api/explain", pic="sample:chelsea", method="magic")
    assert "did you mean 'tabby'" in refused(client, "/api/explain", pic="sample:chelsea", method="cam",
                                             target="tabbby")
    assert "out of range" in refused(client, "/api/explain", pic="sample:chelsea", method="cam", target="1000")
    assert "layer" in refused(client, "/api/activations", pic="sample:chelsea", layer="blocks.99")
    assert "outside" in refused(client, "/api/occlude", pic="sample:chelsea", x=400, y=0)
    assert "occlusion" in refused(client, "/api/explain", pic="sample:chelsea", method="cam", size=8)
    assert client.get("/api/nothing").status_code == 404


def test_token_and_host_checks(lite0, tmp_path) -> None:
    guarded = TestClient(create_app(Explorer(lite0, cache=tmp_path, token="s3cret")), base_url="http://10.1.2.3:9")
    assert guarded.get("/api/info").status_code == 403
    refusal = guarded.get("/").json()
    assert refusal["status"] == 403 and "token" in refusal["error"]
    assert guarded.get("/api/info", params={"token": "wrong"}).status_code == 403
    assert guarded.get("/api/info", headers={"Authorization": "token s3cret"}).status_code == 200
    page = guarded.get("/", params={"token": "s3cret", "x": "1"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/?x=1"  # the token leaves the URL
    cookie = page.headers["set-cookie"]
    assert "convscope-token-9=s3cret" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert guarded.get("/api/info").status_code == 200  # the cookie carries it now
    # with the cookie alone, work needs the page's own header (a page on another port is the same site)
    assert guarded.get("/api/predict", params={"pic": "sample:chelsea"}).status_code == 403
    assert guarded.get("/api/predict", params={"pic": "sample:chelsea"}, headers=OWN).status_code == 200
    local = TestClient(create_app(Explorer(lite0, cache=tmp_path)), base_url=LOCAL)
    assert local.get("/api/info").status_code == 200
    rebinding = local.get("/api/info", headers={"host": "attacker.example:8765"})
    assert rebinding.status_code == 403 and "not this computer" in rebinding.json()["error"]
    assert check_address("127.0.0.1", None, no_token=True) is None
    assert len(check_address("127.0.0.1", None)) >= 20  # a random token on loopback too
    assert len(check_address("0.0.0.0", None)) >= 20
    assert check_address("::", "given") == "given"
    with pytest.raises(ValueError, match="empty --token"):
        check_address("0.0.0.0", "")
    with pytest.raises(ValueError, match="--no-token is refused on 0.0.0.0"):
        check_address("0.0.0.0", None, no_token=True)


@pytest.mark.parametrize("headers", [
    {"Origin": "http://127.0.0.1:9999"},  # another port of this computer: the same site, another origin
    {"Origin": "null"},
    {"Referer": "http://evil.example/page.html"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": LOCAL},
])
def test_other_origins_cannot_start_work(lite0, tmp_path, headers) -> None:
    explorer = Explorer(lite0, cache=tmp_path)
    client = local_client(explorer)
    answers = [client.get("/api/explain", params={"pic": "sample:chelsea", "method": "score_cam"}, headers=headers),
               client.get("/api/predict", params={"pic": "sample:chelsea"}, headers=headers),
               client.post("/api/upload", files={"file": ("a.png", b"x", "image/png")}, headers=headers),
               client.post("/api/cancel", headers=headers)]
    for answer in answers:
        assert answer.status_code == 403 and "came from" in answer.json()["error"], answer.text
    assert explorer.worker.status()["done"] == 0 and explorer.pictures.listing()[-1]["source"] == "bundled"


def test_work_needs_the_page_header_or_the_token(lite0, tmp_path) -> None:
    explorer = Explorer(lite0, cache=tmp_path)
    bare = TestClient(create_app(explorer), base_url=LOCAL)  # as an <img> or a form would ask
    for answer in (bare.get("/api/explain", params={"pic": "sample:chelsea", "method": "cam"}),
                   bare.post("/api/upload", files={"file": ("a.png", b"x", "image/png")})):
        assert answer.status_code == 403 and "X-Convscope-Request" in answer.json()["error"]
    assert explorer.worker.status()["done"] == 0
    assert bare.get("/api/info").status_code == 200 and bare.get("/").status_code == 200  # reads and pages
    assert bare.get("/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status_code == 200
    page = bare.get("/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    scripted = TestClient(create_app(Explorer(lite0, cache=tmp_path, token="t0k")), base_url=LOCAL)
    assert scripted.get("/api/predict", params={"pic": "sample:chelsea"},
                        headers={"Authorization": "token t0k"}).status_code == 200


def test_cli_refuses_an_empty_token_off_loopback(capsys) -> None:
    from convscope.cli import main

    assert main(["explore", "--host", "0.0.0.0", "--token", ""]) == 2
    assert "empty --token" in capsys.readouterr().err
    assert main(["explore", "--host", "0.0.0.0", "--no-token"]) == 2
    assert "--no-token is refused" in capsys.readouterr().err


def test_layer_endpoints(setup, lite0) -> None:
    explorer, client, _ = setup
    layers = {row["name"]: row for row in ok(client, "/api/layers")["layers"]}
    assert layers["blocks.4"]["shape"] == [112, 14, 14] and layers["bn2"]["maps"]
    got = ok(client, "/api/activations", pic="sample:chelsea", layer="bn2")
    maps = cs.activation_maps(lite0, cs.load_sample("chelsea"), "bn2")
    means = [c["mean"] for c in got["channels"]]
    assert len(means) == 1280 and means == sorted(means, reverse=True)
    assert {c["index"] for c in got["channels"] if c["dead"]} == set(maps.dead.nonzero().flatten().tolist())
    assert got["dead"] == int(maps.dead.sum()) > 0
    assert decoded(got["atlas"]).size == (got["columns"] * 7, -(-1280 // got["columns"]) * 7)
    channel = ok(client, "/api/channel", pic="file:0/cats/chelsea.png", layer="blocks.2", channel=5)
    assert set(channel["views"]) == {"activation", "deconvnet", "guided_backprop"}
    assert decoded(channel["patches"]).size[0] > 0  # the scan was made with this model
    assert "out of range" in refused(client, "/api/channel", pic="sample:chelsea", layer="blocks.2", channel=4000)


def test_feature_visualisation_is_cached_on_disk(setup) -> None:
    explorer, client, _ = setup
    first = ok(client, "/api/features", layer="blocks.1", channel=3, steps=8, size=32)
    assert not first["from_disk"] and decoded(first["image"]).size == (32, 32)
    from convscope.explore.layer_view import feature_picture

    again = feature_picture(explorer, "blocks.1", 3, 8, 32)
    assert again["from_disk"] and again["image"] == first["image"]
    assert "out of range" in refused(client, "/api/features", layer="blocks.1", channel=24)
    stem = next((explorer.cache_dir / "features").rglob("blocks_1_3_8_32.png")).with_suffix("")
    for damaged in (".png", ".json"):  # cut short: computed again, never served
        path = stem.with_suffix(damaged)
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        redone = feature_picture(explorer, "blocks.1", 3, 8, 32)
        assert not redone["from_disk"] and redone["image"] == first["image"]
        assert feature_picture(explorer, "blocks.1", 3, 8, 32)["from_disk"]
    assert not [p for p in stem.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary file is left


def test_feature_visualisation_of_a_fixed_size_model(tmp_path) -> None:
    """fashion_cnn takes only 28×28 pictures (a linear head): its feature visualisations are made at 28 px; a
    layer without feature maps is refused with the reason."""
    from convscope.models import load_model

    client = local_client(Explorer(load_model("fashion_cnn"), cache=tmp_path))
    made = ok(client, "/api/features", layer="conv2", channel=1, steps=8)
    assert made["size"] == 28 and decoded(made["image"]).size == (28, 28)
    assert "takes only 28×28 pictures" in refused(client, "/api/features", layer="conv2", channel=1, size=128)
    assert "not feature maps" in refused(client, "/api/features", layer="relu7", channel=0)


def test_every_failure_is_json_with_one_line(lite0, tmp_path, monkeypatch) -> None:
    from convscope.explore import image_view

    def broken(*args, **options):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nsecond line")

    monkeypatch.setattr(image_view, "predictions", broken)
    client = TestClient(create_app(Explorer(lite0, cache=tmp_path)), base_url=LOCAL, headers=OWN,
                        raise_server_exceptions=False)
    answer = client.get("/api/predict", params={"pic": "sample:chelsea"})
    assert answer.status_code == 500
    assert answer.json() == {"status": 500, "error": "RuntimeError: mat1 and mat2 shapes cannot be multiplied"}
    assert client.get("/api/nothing").json() == {"status": 404, "error": "Not Found"}
    assert client.delete("/api/info").json()["status"] == 405
    assert client.get("/static/missing.js").json()["status"] == 404


def test_damaged_scan_predictions_are_computed_again(setup) -> None:
    from convscope.explore.dataset_view import scan_predictions

    explorer, _, _ = setup
    expected = scan_predictions(explorer)
    (path,) = (explorer.cache_dir / "predictions").glob("*.pt")
    path.write_bytes(path.read_bytes()[:40])
    assert scan_predictions(explorer) == expected
    assert path.stat().st_size > 40  # written again, whole


def test_scan_endpoints(setup, lite0) -> None:
    explorer, client, _ = setup
    info = ok(client, "/api/scan")
    assert info["count"] == 6 and info["layers"] == ["blocks.2"] and info["class_names"] == ["living", "things"]
    import importlib.util

    assert ("umap" in info["methods"]) == (importlib.util.find_spec("umap") is not None) and "pca" in info["methods"]
    found = ok(client, "/api/scan/embedding", method="pca")
    assert len(found["x"]) == len(found["indices"]) == 6 and sorted(found["labels"]) == [0, 0, 0, 1, 1, 1]
    assert client.get("/api/scan/thumb.png", params={"index": 0}).headers["content-type"] == "image/png"
    assert "not in the scan" in refused(client, "/api/scan/thumb.png", index=6)
    assert "scanned layer" in refused(client, "/api/scan/embedding", layer="bn2")
    assert ok(client, "/api/scan/dead")["lines"][0].startswith("blocks.2")
    assert len(ok(client, "/api/scan/statistics")["channels"]) == 40
    predicted = ok(client, "/api/scan/predictions")["predicted"]
    pictures = [explorer.scan.pictures.picture(i) for i in range(6)]
    assert predicted == cs.predict(lite0, pictures, k=1).indices[:, 0].tolist()
    from convscope.explore.dataset_view import scan_predictions

    assert scan_predictions(explorer) == predicted  # read back from the disk cache
    bare = local_client(Explorer(lite0, cache=explorer.cache_dir))
    assert "--scan" in refused(bare, "/api/scan")


def test_scan_neighbours(setup) -> None:
    explorer, client, _ = setup
    got = ok(client, "/api/scan/neighbors", index=0, k=3)
    expected = explorer.scan.neighbors([0], k=3)
    assert [r["index"] for r in got["feature"]] == expected.feature_indices[0].tolist()
    assert [r["index"] for r in got["pixel"]] == expected.pixel_indices[0].tolist()
    assert got["label"] == 0 and {r["class"] for r in got["feature"]} <= {"living", "things"}


def test_model_endpoints(setup) -> None:
    _, client, _ = setup
    assert ok(client, "/api/model/convolutions")["layers"][0] == "conv_stem"
    first = ok(client, "/api/model/filters")
    assert first["layer"] == "conv_stem" and first["kind"] == "colour" and first["shape"] == [32, 3, 3, 3]
    assert "not a convolution" in refused(client, "/api/model/filters", layer="bn1")
    stats = ok(client, "/api/model/statistics", pic="sample:coffee")
    assert stats["rows"][0]["layer"] == "conv_stem" and stats["target"].startswith("target:")


def test_the_server_answers_while_the_worker_is_busy(setup) -> None:
    explorer, client, _ = setup
    release = threading.Event()
    started = threading.Event()

    def long_job() -> str:
        started.set()
        release.wait(10)
        return "done"

    future = explorer.worker.submit("long", long_job, description="a long job")
    assert started.wait(10)
    try:
        queue = ok(client, "/api/queue")
        assert queue["running"]["what"] == "a long job"
        assert ok(client, "/api/info")["model"] == "efficientnet_lite0"  # answered while the job runs
        assert ok(client, "/api/scan/dead")["layer"] == "blocks.2"  # scan views need not wait for the model
    finally:
        release.set()
    assert future.result(10) == "done"


def test_queued_jobs_are_shared_and_cancellable() -> None:
    worker = Worker(ResultCache(), "test")
    gate = threading.Event()
    worker.submit("block", lambda: gate.wait(10))
    calls = []
    first = worker.submit("same", lambda: calls.append(1) or 1, group="page-1")
    assert worker.submit("same", lambda: calls.append(2) or 2, group="page-2") is first  # one job for one key
    dropped = worker.submit("other", lambda: calls.append(3), group="page-1")
    assert worker.cancel("page-1") == 1  # "same" is still wanted by page-2
    assert worker.cancel("page-2") == 1
    gate.set()
    with pytest.raises(Cancelled):
        dropped.result(5)
    with pytest.raises(Cancelled):
        first.result(5)
    kept = worker.submit("after", lambda: 7)
    assert kept.result(5) == 7 and calls == []
    deadline = time.monotonic() + 5
    while worker.cache.get("after") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.cache.get("after") == 7


def test_a_running_job_stops_at_its_next_chunk_when_cancelled() -> None:
    from convscope.attribution.base import chunks

    worker = Worker(ResultCache(), "test")
    steps, third = [], threading.Event()

    def long_job() -> int:
        for n, _ in enumerate(chunks(1000, 1, description="steps", progress=False)):
            steps.append(n)
            if n == 3:
                third.set()
            time.sleep(0.01)
        return -1

    future = worker.submit("long", long_job, group="page")
    assert third.wait(10)
    assert worker.cancel() == 1  # every job, the running one too
    with pytest.raises(Cancelled):
        future.result(10)
    assert len(steps) < 1000 and worker.status()["cancelled"] == 1 and worker.cache.get("long") is None


def test_the_background_lane_gives_way_to_interactive_work() -> None:
    """Between two chunks, a background job waits while the interactive lane has work: interactive jobs submitted
    while it runs finish before it takes its next chunk (the order, not the time, is asserted)."""
    from convscope.attribution.base import chunks

    cache = ResultCache()
    interactive = Worker(cache, "interactive")
    background = Worker(cache, "background", yields_to=interactive)
    log, started, gate = [], threading.Event(), threading.Event()

    def slow() -> str:
        for n, _ in enumerate(chunks(60, 1, description="Score-CAM", progress=False)):
            log.append(f"chunk {n}")
            started.set()
            time.sleep(0.005)
        return "slow"

    def blocking() -> str:
        log.append("interactive 1 starts")
        gate.wait(10)
        return "one"

    finished = background.submit("slow", slow)
    assert started.wait(10)
    first = interactive.submit("one", blocking, priority=CHEAP)
    second = interactive.submit("two", lambda: log.append("interactive 2") or "two", priority=INTERACTIVE)
    deadline = time.monotonic() + 10
    while "interactive 1 starts" not in log and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the background job would take many chunks meanwhile if it did not pause
    gate.set()
    assert (first.result(10), second.result(10), finished.result(20)) == ("one", "two", "slow")
    begin, end = log.index("interactive 1 starts"), log.index("interactive 2")
    assert all(not entry.startswith("chunk") for entry in log[begin + 2:end])  # at most the chunk under way
    assert log[-1] == "chunk 59" and interactive.status()["done"] == 2
    gate.clear()
    interactive.submit("three", lambda: gate.wait(10))
    queued = background.submit("queued", lambda: "later")  # a background job waits for the interactive lane
    time.sleep(0.2)
    assert background.status()["running"] is None and background.status()["waiting"] == ["queued"]
    gate.set()
    assert queued.result(10) == "later"


def test_check_results_become_badges(lite0, tmp_path) -> None:
    import json

    summary = {"pointing_game": [{"method": "grad_cam", "pointing_accuracy": 0.83}],
               "faithfulness": [{"method": "grad_cam", "deletion_auc": 0.1, "insertion_auc": 0.6}]}
    (tmp_path / "checks.json").write_text(json.dumps(summary))
    client = local_client(Explorer(lite0, checks=tmp_path, cache=tmp_path, methods=["saliency", "grad_cam"]))
    methods = ok(client, "/api/methods")["methods"]
    assert [m["name"] for m in methods] == ["grad_cam", "saliency"]  # cheapest first
    assert methods[0]["checks"] == {"pointing": 0.83, "deletion": 0.1, "insertion": 0.6}
    assert methods[1]["checks"] is None
    with pytest.raises(ValueError, match="checks.json"):
        Explorer(lite0, checks=tmp_path / "nowhere", cache=tmp_path)
    with pytest.raises(ValueError, match="unknown attribution method"):
        Explorer(lite0, cache=tmp_path, methods=["grad_cam", "magic"])


def test_queue_reports_the_library_progress_bar(setup) -> None:
    from convscope.attribution.base import chunks

    explorer, client, _ = setup
    halfway, release = threading.Event(), threading.Event()

    def job() -> int:
        for n, _ in enumerate(chunks(50, 10, description="Score-CAM", progress=False)):
            if n == 3:
                halfway.set()
                release.wait(10)
        return n

    future = explorer.worker.submit("progress", job, description="a job with batches")
    assert halfway.wait(10)
    try:
        running = ok(client, "/api/queue")["running"]
        assert running["progress"] == {"what": "Score-CAM", "done": 3, "total": 5}
    finally:
        release.set()
    assert future.result(10) == 4
    assert list(chunks(3, 2, description="outside the worker", progress=False)) == [slice(0, 2), slice(2, 3)]


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_clicks_go_before_a_running_score_cam_which_can_be_cancelled(lite0, tmp_path) -> None:
    """While Score-CAM runs (1 280 masked passes on Lite0, in chunks), a prediction and a Grad-CAM map are answered
    before it ends; then /api/cancel stops it and its request gets a 409."""
    explorer = Explorer(lite0, cache=tmp_path)
    client = local_client(explorer)
    answers = []
    slow = threading.Thread(target=lambda: answers.append(client.get("/api/explain", params={
        "pic": "sample:chelsea", "method": "score_cam", "target": "tabby"})))
    slow.start()
    progress = lambda: (explorer.background.status()["running"] or {}).get("progress") or {}  # noqa: E731
    wait_for(lambda: progress().get("done", 0) >= 1)
    assert ok(client, "/api/predict", pic="sample:coffee", k=1)["top"][0]["name"] == "espresso"
    assert ok(client, "/api/explain", pic="sample:coffee", method="grad_cam")["method"] == "grad_cam"
    running = explorer.background.status()["running"]
    assert running["what"] == "Score-CAM on chelsea" and running["progress"]["done"] < running["progress"]["total"]
    assert client.post("/api/cancel").json()["cancelled"] == 1
    slow.join(60)
    assert answers[0].status_code == 409 and "cancelled" in answers[0].json()["error"]
    wait_for(lambda: explorer.background.status()["running"] is None, 10)
    assert explorer.background.status()["cancelled"] == 1


def test_a_client_that_goes_away_cancels_its_job(lite0, tmp_path) -> None:
    import http.client

    explorer = Explorer(lite0, cache=tmp_path)
    with serving(create_app(explorer)) as url:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
        connection.request("GET", "/api/explain?pic=sample:chelsea&method=score_cam", headers=OWN)
        wait_for(lambda: explorer.background.status()["running"] is not None)
        connection.close()  # the page was closed or reloaded
        wait_for(lambda: explorer.background.status()["running"] is None, 20)
        assert explorer.background.status()["cancelled"] == 1


def test_work_beyond_the_budget_is_refused_with_the_reason(setup) -> None:
    explorer, client, _ = setup
    reason = refused(client, "/api/explain", pic="sample:chelsea", method="occlusion", size=2, stride=1)
    assert "49,729 forward passes" in reason and "stride of at least 6" in reason
    assert "no such limit" in refused(client, "/api/features", layer="blocks.1", channel=0, steps=2048, size=512)
    assert explorer.background.status()["waiting"] == [] and explorer.background.status()["running"] is None


def test_cli_serves_the_model_with_the_class_names_given(tmp_path, monkeypatch, capsys) -> None:
    import uvicorn

    from convscope.cli import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    names = tmp_path / "names.txt"
    names.write_text("".join(f"thing {n}\n" for n in range(1000)))
    assert main(["explore", "--classes", str(names), "--port", "0", "--cache", str(tmp_path)]) in (0, None)
    explorer = served["app"].state.explorer
    assert explorer.model.classes()[281] == "thing 281" and explorer.token  # a token by default, on loopback too
    assert f"?token={explorer.token}" in capsys.readouterr().out


def test_a_map_that_does_not_depend_on_the_picture_is_marked(setup, lite0) -> None:
    """Lite0 has no max-pooling switches: its deconvnet map for a class is the same for every picture (checked
    here against two photos), and the explorer says so; Grad-CAM's is not marked."""
    _, client, _ = setup
    cat = ok(client, "/api/explain", pic="sample:chelsea", method="deconvnet", target="tabby")
    cup = ok(client, "/api/explain", pic="sample:coffee", method="deconvnet", target="tabby")
    from PIL import ImageChops

    assert cat["independent"] and cup["independent"]
    difference = ImageChops.difference(decoded(cat["map"]).convert("RGB"), decoded(cup["map"]).convert("RGB"))
    assert max(high for _, high in difference.getextrema()) <= 1  # one map for both pictures
    assert not ok(client, "/api/explain", pic="sample:chelsea", method="grad_cam", target="tabby")["independent"]
    channel = ok(client, "/api/channel", pic="sample:chelsea", layer="blocks.2", channel=5)
    assert "guided_backprop" not in channel["independent"]  # masked by the picture's own activations


def test_cli_no_token_on_loopback_warns(tmp_path, monkeypatch, capsys) -> None:
    import uvicorn

    from convscope.cli import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    assert main(["explore", "--no-token", "--port", "0", "--cache", str(tmp_path)]) in (0, None)
    assert served["app"].state.explorer.token is None
    printed = capsys.readouterr()
    assert "?token=" not in printed.out and "warning: --no-token" in printed.err
