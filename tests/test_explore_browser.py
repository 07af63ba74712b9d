"""The explorer in a real browser (Debian's Chromium driven by Playwright): each view, clicks, drags, hovers,
shared URLs — asserting on what the page shows.

Set ``CONVSCOPE_SCREENSHOTS=FOLDER`` to keep a screenshot of each view.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from chromium import launched, needs_chromium  # noqa: E402
from test_explore_api import serving  # noqa: E402

import convscope as cs  # noqa: E402
from convscope.explore import Explorer, create_app  # noqa: E402

CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")  # a test camera
WAIT = 300_000  # ms; the CPU may be shared

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(lite0, tmp_path_factory):
    from test_explore_api import make_folder, scan_set

    from convscope.data import ImageFolder

    root = tmp_path_factory.mktemp("browser")
    folder = make_folder(root)
    scan = cs.Scan(lite0, ["blocks.2"], k=3).run(ImageFolder(scan_set(root)), root / "scan")
    explorer = Explorer(lite0, [folder], scan=scan.folder, cache=root / "cache",
                        methods=["grad_cam", "cam", "saliency", "guided_backprop"])
    with serving(create_app(explorer)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    yield from launched(CAMERA)


@pytest.fixture
def page(browser):
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the explorer's CSP forbids (the test
    # of other origins runs the page under its CSP)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"], bypass_csp=True)
    opened = context.new_page()
    opened.set_default_timeout(WAIT)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))  # uncaught errors of the page's code
    yield opened
    context.close()
    assert not errors, errors


def screenshot(page, name: str) -> None:
    folder = os.environ.get("CONVSCOPE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def open_image_view(page, server: str, picture: str) -> None:
    """The image view of ``picture``, once its top classes are shown."""
    page.goto(f"{server}/#/image?pic={picture}")
    page.wait_for_selector("#topk li")


def test_image_view_click_a_class_then_drag_the_occluder(server, page) -> None:
    open_image_view(page, server, "sample:chelsea")
    assert page.inner_text("#topk li.chosen").startswith("tiger cat")
    page.click("#topk li:has-text('tabby')")
    page.wait_for_function("location.hash.includes('target=281')")
    for method in ("grad_cam", "cam", "saliency", "guided_backprop"):
        page.wait_for_selector(f".card[data-method={method}][data-state=done] img")
    assert "tabby" in page.inner_text(".card[data-method=grad_cam] .settings")
    assert "layer=bn2" in page.inner_text(".card[data-method=grad_cam] .settings")

    page.select_option("select[aria-label='occluder size']", "96")
    box = page.locator("#stage").bounding_box()
    readings = []
    for fx, fy in ((0.5, 0.55), (0.1, 0.1)):  # the cat's face, then a corner
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + fx * box["width"] + 2, box["y"] + fy * box["height"] + 2)
        page.mouse.up()
        previous = readings[-1] if readings else None
        page.wait_for_function("(old) => { const b = document.querySelector('#occluded-probability');"
                               " return b && b.textContent !== old; }", arg=previous)
        page.wait_for_timeout(300)  # the latest position's answer
        readings.append(page.inner_text("#occluded-probability"))
    assert "tabby" in page.inner_text("#occlusion-readout") and "top class:" in page.inner_text("#occluded-top")
    face, corner = (float(r.split()[0]) for r in readings)
    assert face < corner  # covering the face lowers 'tabby' more than covering a corner
    screenshot(page, "image")


def test_typing_a_class_with_completion(server, page) -> None:
    open_image_view(page, server, "file:0/coffee.jpg")
    assert page.locator("#class-names option[value='espresso']").count() == 1
    page.fill("#class-input", "espresso")
    page.keyboard.press("Enter")
    page.wait_for_function("location.hash.includes('target=967')")
    page.wait_for_selector(".card[data-method=grad_cam][data-state=done]")
    assert "espresso" in page.inner_text(".card[data-method=grad_cam] .settings")


def test_a_webcam_frame_becomes_an_upload(server, page) -> None:
    open_image_view(page, server, "sample:chelsea")
    page.click("button:has-text('Webcam')")
    page.wait_for_function("location.hash.includes('pic=upload')")
    page.wait_for_function("document.querySelector('#picture-select').value.startsWith('upload:')")
    page.wait_for_selector("#topk li")
    assert "webcam.png" in page.inner_text("#picture-select")


def test_a_dropped_file_is_uploaded_and_a_bad_one_refused(server, page) -> None:
    open_image_view(page, server, "sample:chelsea")
    drop = """async ([name, bytes]) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/png'}));
        document.getElementById('stage').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true,
                                                                              cancelable: true}));
    }"""
    page.evaluate(drop, ["notes.png", list(b"not a picture at all")])
    page.wait_for_selector("#error:not([hidden])")
    assert "cannot read 'notes.png'" in page.inner_text("#error")
    red = Image.new("RGB", (40, 30), (220, 20, 20))
    buffer = io.BytesIO()
    red.save(buffer, format="PNG")
    page.evaluate(drop, ["red.png", list(buffer.getvalue())])
    page.wait_for_function("location.hash.includes('pic=upload')")
    page.wait_for_selector("#topk li")
    assert "red.png" in page.inner_text("#picture-select")


def test_layer_view_and_a_channel(server, page) -> None:
    page.goto(f"{server}/#/layer?pic=sample:chelsea&layer=blocks.2")
    page.wait_for_selector(".channel canvas")
    assert page.locator(".channel").count() == 40
    assert "blocks.2: 40×28×28" in page.inner_text("#channels-summary")
    first = page.locator(".channel").first
    number = first.get_attribute("data-channel")
    first.click()
    page.wait_for_function(f"location.hash.includes('channel={number}')")
    for view in ("activation", "deconvnet", "guided_backprop"):
        page.wait_for_selector(f"#channel-detail figure[data-view={view}] img")
    page.wait_for_selector("#top-patches img")
    assert f"blocks.2 #{number}" in page.inner_text("#channel-detail")
    screenshot(page, "layer")


def test_a_shared_url_reopens_the_view(server, page) -> None:
    page.goto(f"{server}/#/layer?pic=sample:coffee&layer=blocks.2&channel=3")
    page.wait_for_selector("#channel-detail figure[data-view=activation] img")
    assert page.input_value("#layer-select") == "blocks.2"
    assert page.input_value("#picture-select") == "sample:coffee"
    assert "blocks.2 #3" in page.inner_text("#channel-detail")
    assert page.get_attribute(".channel.chosen", "data-channel") == "3"


def test_dataset_view_hover_and_click_a_point(server, page) -> None:
    page.goto(f"{server}/#/dataset?method=pca")
    page.wait_for_function("window.convscopeScatter && window.convscopeScatter.count() === 6")
    assert "6 points, pca of blocks.2" in page.inner_text("#scatter-note")
    import importlib.util

    offered = page.locator("#scan-method option[value=umap]").count()
    assert offered == (importlib.util.find_spec("umap") is not None)  # UMAP only when umap-learn is installed
    x, y = page.evaluate("window.convscopeScatter.clientPoint(2)")
    page.mouse.move(x, y)
    page.wait_for_selector(".tooltip:not([hidden]) img")
    assert page.inner_text("#tooltip-text").startswith("#")
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("location.hash.includes('point=')")
    page.wait_for_selector("#neighbours .neighbours figure img")
    assert page.locator("#neighbours .neighbours figure").count() == 1 + 5 + 5
    assert "feature space (blocks.2" in page.inner_text("#neighbours")
    assert "blocks.2:" in page.inner_text("#dead-filters")
    page.select_option("#scan-colour", "prediction")
    page.wait_for_function("location.hash.includes('color=prediction')")
    page.wait_for_function("document.querySelector('#scatter-note').textContent.includes(\"predicted class\")")
    screenshot(page, "dataset")


def test_model_view(server, page) -> None:
    page.goto(f"{server}/#/model?layer=conv_stem&pic=sample:chelsea")
    page.wait_for_selector("#filters img")
    assert "conv_stem: 32×3×3×3 (colour)" in page.inner_text("#filters")
    page.wait_for_selector("#stats-table tr:nth-child(10)")
    assert "target: tiger cat" in page.inner_text("#layer-stats")
    screenshot(page, "model")


ATTACK = """<!doctype html><title>another site</title><body><script>
const target = new URLSearchParams(location.search).get("target");
const done = [];
const form = new FormData();
form.append("file", new Blob([Uint8Array.from(atob("%s"), (c) => c.charCodeAt(0))], {type: "image/png"}), "x.png");
done.push(fetch(target + "/api/upload", {method: "POST", body: form, mode: "no-cors", credentials: "include"})
  .catch(() => {}));
done.push(fetch(target + "/api/predict?pic=sample:chelsea", {mode: "no-cors", credentials: "include"}).catch(() => {}));
done.push(fetch(target + "/api/cancel", {method: "POST", mode: "no-cors", credentials: "include"}).catch(() => {}));
for (const method of ["score_cam", "grad_cam"]) {
  for (const policy of ["no-referrer", "unsafe-url"]) {
    const img = document.createElement("img");
    img.referrerPolicy = policy;
    done.push(new Promise((r) => { img.onload = r; img.onerror = r; }));
    img.src = target + "/api/explain?pic=sample:chelsea&method=" + method + "&target=" + policy.length;
    document.body.append(img);
  }
}
Promise.all(done).then(() => { document.title = "finished"; });
</script></body>"""


def test_a_page_from_another_origin_can_neither_upload_nor_start_work(lite0, browser, tmp_path) -> None:
    import base64
    import http.server

    explorer = Explorer(lite0, cache=tmp_path / "cache", token="t0ken-for-the-test", methods=["grad_cam"])
    red = io.BytesIO()
    Image.new("RGB", (8, 8), (250, 0, 0)).save(red, format="PNG")
    (tmp_path / "attack.html").write_text(ATTACK % base64.b64encode(red.getvalue()).decode())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)  # another port: the same site, another origin
    threading.Thread(target=other.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        with serving(create_app(explorer)) as url:
            page = context.new_page()
            page.set_default_timeout(WAIT)
            page.goto(f"{url}/?token=t0ken-for-the-test#/image?pic=sample:chelsea")
            page.wait_for_selector(".card[data-method=grad_cam][data-state=done] img")  # its own page works ...
            assert "token" not in page.url and page.url.endswith("#/image?pic=sample:chelsea")  # ... and a clean URL
            assert not any("token=" in c["value"] for c in context.cookies())
            cookie = next(c for c in context.cookies() if c["name"].startswith("convscope-token"))
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            done_before = explorer.worker.status()["done"]
            listed = len(explorer.pictures.listing())
            attacker = context.new_page()
            attacker.goto(f"http://127.0.0.1:{other.server_address[1]}/attack.html?target={url}", wait_until="commit")
            attacker.wait_for_function("document.title === 'finished'")
            time.sleep(1)  # anything it queued would be running by now
            status = explorer.worker.status()
            assert status["done"] == done_before and status["running"] is None and not status["waiting"]
            assert len(explorer.pictures.listing()) == listed  # no upload was added
            page.reload()
            page.wait_for_selector("#topk li")  # the explorer still works for its own page
    finally:
        context.close()
        other.shutdown()


def flat_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A PNG of one colour, written row by row (the test itself never holds the decoded picture)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row, packer = b"\0" + bytes(rgb) * width, zlib.compressobj(6)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def memory() -> dict[str, int]:
    """This process's (the server's) resident and peak resident memory, in MB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            found[line.split(":")[0]] = int(line.split()[1]) // 1024
    return found


PEAK_MB, KEPT_MB = 300, 64  # one decoding: 196 MB (a 49-megapixel RGB picture in Pillow); 588 MB as floats


def test_49_megapixel_uploads_keep_memory_bounded(lite0, browser, tmp_path) -> None:
    """Four 7000×7000 PNGs (about 160 kB each) uploaded with Upload…: the server's peak memory grows by less than
    PEAK_MB (one decoding at a time, shrunk while decoded) and what stays by less than KEPT_MB."""
    pngs = [flat_png(7000, 7000, (40 * n, 200, 30)) for n in range(4)]
    explorer = Explorer(lite0, cache=tmp_path / "cache", methods=["grad_cam"])
    context = browser.new_context(bypass_csp=True)
    try:
        with serving(create_app(explorer)) as url:
            page = context.new_page()
            page.set_default_timeout(WAIT)
            open_image_view(page, url, "sample:chelsea")
            page.wait_for_selector(".card[data-method=grad_cam][data-state=done] img")
            before = memory()["VmRSS"]
            Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
            for n, data in enumerate(pngs):
                page.set_input_files("input[type=file]", files=[{"name": f"big{n}.png", "mimeType": "image/png",
                                                                 "buffer": data}])
                page.wait_for_function(f"document.querySelector('#picture-select').selectedOptions[0]"
                                       f".textContent === 'big{n}.png'")
                page.wait_for_selector(".card[data-method=grad_cam][data-state=done] img")
            after = memory()
            print(f"memory: {before} MB before, {after} MB after four 49-megapixel uploads")
            assert after["VmHWM"] - before < PEAK_MB, (before, after)
            assert after["VmRSS"] - before < KEPT_MB, (before, after)
            assert len([p for p in explorer.pictures.listing() if p["source"] == "upload"]) == 4
    finally:
        context.close()


def test_errors_are_shown_once_and_leave_nothing_stale(server, page) -> None:
    """A typo in a class: one request, one error. A picture that cannot be read: the previous picture's classes
    and maps go. A non-picture chosen with Upload…: its error. A data-set point that does not exist: an error,
    not an endless "computing…"."""
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/explain" in r.url else None)
    open_image_view(page, server, "sample:chelsea")
    page.wait_for_selector(".card[data-method=grad_cam][data-state=done] img")
    asked.clear()
    page.fill("#class-input", "tabbby")
    page.keyboard.press("Enter")
    page.wait_for_selector("#maps-error")
    assert "did you mean 'tabby'" in page.inner_text("#maps-error")
    assert page.locator("#error div").count() == 1 and len(asked) == 1 and page.locator(".card").count() == 0

    page.goto(f"{server}/#/image?pic=file:0/fake.png")
    page.wait_for_selector("#picture-error")
    assert "cannot read" in page.inner_text("#picture-error")
    assert page.locator(".card").count() == 0 and page.locator("#topk li").count() == 1

    open_image_view(page, server, "sample:coffee")
    page.set_input_files("input[type=file]", files=[{"name": "notes.png", "mimeType": "image/png",
                                                     "buffer": b"not a picture"}])
    page.wait_for_function("document.querySelector('#error').textContent.includes(\"cannot read 'notes.png'\")")
    assert page.input_value("#picture-select") == "sample:coffee"

    page.goto(f"{server}/#/dataset?method=pca&point=4000")
    page.wait_for_selector("#neighbours-error")
    assert "not in the scan" in page.inner_text("#neighbours-error")
    assert "computing" not in page.inner_text("#neighbours")
    screenshot(page, "errors")


def test_the_layer_tree(server, page) -> None:
    """The layers as the model nests them, with types and shapes, Identity placeholders left out; the chosen
    layer's branch is open, and a click on another layer opens it."""
    page.goto(f"{server}/#/layer?pic=sample:chelsea&layer=blocks.2")
    page.wait_for_selector("#layer-tree a.chosen[data-layer='blocks.2']")
    assert "Identity" not in page.inner_text("#layer-tree") and "Identity" not in page.inner_text("#layer-select")
    assert page.locator("#layer-tree details[open] > summary a[data-layer='blocks']").count() == 1
    assert "40×28×28" in page.inner_text("#layer-tree a[data-layer='blocks.2']")
    page.click("#layer-tree summary:has(a[data-layer='blocks.3']) a[data-layer='blocks.3']")
    page.wait_for_function("location.hash.includes('layer=blocks.3')")
    page.wait_for_selector("#layer-tree a.chosen[data-layer='blocks.3']")
    assert page.input_value("#layer-select") == "blocks.3"


def test_another_class_cancels_the_previous_classes_work(lite0, browser, tmp_path) -> None:
    """Score-CAM of the top class is computing when another class is clicked: the page aborts its requests and
    cancels their group, so the server stops that job at its next chunk and computes the new class's."""
    from test_explore_api import wait_for

    explorer = Explorer(lite0, cache=tmp_path / "cache", methods=["grad_cam", "score_cam"])
    context = browser.new_context(bypass_csp=True)
    try:
        with serving(create_app(explorer)) as url:
            page = context.new_page()
            page.set_default_timeout(WAIT)
            open_image_view(page, url, "sample:chelsea")
            running = lambda: explorer.background.status()["running"] or {}  # noqa: E731
            wait_for(lambda: running().get("what") == "Score-CAM on chelsea" and (running().get("progress") or {})
                     .get("done", 0) >= 1)
            page.click("#topk li:has-text('tabby')")
            page.wait_for_function("location.hash.includes('target=281')")
            wait_for(lambda: explorer.background.status()["cancelled"] >= 1)
            page.wait_for_selector(".card[data-method=grad_cam][data-state=done] img")
            assert "tabby" in page.inner_text(".card[data-method=grad_cam] .settings")
            waiting = explorer.background.status()["waiting"]  # only the new class's: its Score-CAM, its Grad-CAM's
            assert waiting in ([], ["Score-CAM on chelsea"], ["metrics of Grad-CAM on chelsea"],  # metric badges
                               ["Score-CAM on chelsea", "metrics of Grad-CAM on chelsea"]), waiting
    finally:
        context.close()
    wait_for(lambda: explorer.background.status()["running"] is None, 30)  # the page is gone: so is its job
