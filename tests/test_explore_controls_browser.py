"""The explorer's controls in Chromium (as tests/test_explore_browser.py): per-method settings, colour bars, the
shared scale, two classes side by side, export, the scatter's tools, the webcam, relevance and metrics views —
asserting on what the page shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("playwright.sync_api")

import test_explore_browser  # noqa: E402
from chromium import needs_chromium  # noqa: E402
from test_explore_api import serving  # noqa: E402
from test_explore_browser import open_image_view  # noqa: E402

import convscope as cs  # noqa: E402, F401
from convscope.explore import Explorer, create_app  # noqa: E402

browser, page, server = test_explore_browser.browser, test_explore_browser.page, test_explore_browser.server  # fixtures
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def controls(lite0, tmp_path_factory):
    """An explorer showing a heat method, a signed gradient image and a saliency method with settings."""
    explorer = Explorer(lite0, cache=tmp_path_factory.mktemp("controls"),
                        methods=["grad_cam", "guided_backprop", "smooth_grad"])
    with serving(create_app(explorer)) as url:
        yield url


@pytest.fixture(scope="module")
def slow_last(lite0, tmp_path_factory):
    """As ``controls``, with occlusion last: its row of the metrics table (each metric re-runs occlusion) is still
    to come when the first row is done, however fast the machine."""
    explorer = Explorer(lite0, cache=tmp_path_factory.mktemp("slow_last"),
                        methods=["grad_cam", "guided_backprop", "smooth_grad", "occlusion"])
    with serving(create_app(explorer)) as url:
        yield url


def screenshot(page, name: str) -> None:
    """As tests/test_explore_browser.py does, from the top of the page (the header is sticky)."""
    page.evaluate("window.scrollTo(0, 0)")
    test_explore_browser.screenshot(page, name)


def done(page, method: str) -> None:
    page.wait_for_selector(f".card[data-method={method}][data-state=done] .colour-bar")


def inferno() -> list[list[int]]:
    from convscope.render.colormaps import _lut

    return (_lut("inferno") * 255).round().int().tolist()


def colours_of(page, selector: str) -> set[tuple[int, int, int]]:
    return {tuple(c) for c in page.evaluate("""(s) => { const c = document.querySelector(s);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
        return [...seen].map((t) => t.split(',').map(Number)); }""", selector)}


def test_settings_colour_bars_and_a_shared_scale(controls, page) -> None:
    open_image_view(page, controls, "sample:chelsea")
    for method in ("grad_cam", "guided_backprop", "smooth_grad"):
        done(page, method)
    assert page.get_attribute(".card[data-method=grad_cam] .colour-bar", "data-cmap") == "jet"
    assert page.get_attribute(".card[data-method=smooth_grad] .colour-bar", "data-cmap") == "gray"
    signed = ".card[data-method=guided_backprop] .colour-bar"
    assert page.get_attribute(signed, "data-cmap") == "signed" and page.inner_text(f"{signed} .mid") == "0"
    assert page.inner_text(f"{signed} .low").startswith("-")
    heat = float(page.get_attribute(".card[data-method=grad_cam] .pane", "data-heat-max"))
    assert page.inner_text(".card[data-method=grad_cam] .colour-bar .high") == f"{heat:.3g}"
    assert page.locator(".card[data-method=guided_backprop] .method-settings").count() == 0  # it takes none

    card = ".card[data-method=grad_cam]"
    page.click(f"{card} .method-settings summary")
    assert page.locator(f"{card} .method-settings [data-setting]").count() == 1
    page.select_option(f"{card} select[data-setting=layer]", "blocks.4")
    page.click(f"{card} button.apply")
    page.wait_for_function("document.querySelector('.card[data-method=grad_cam][data-state=done] .settings')"
                           "?.textContent.includes('layer=blocks.4')")
    card = ".card[data-method=smooth_grad]"
    page.click(f"{card} .method-settings summary")
    assert {e.get_attribute("data-setting") for e in page.query_selector_all(f"{card} [data-setting]")} == {
        "samples", "noise"}
    page.fill(f"{card} input[data-setting=samples]", "5000")
    page.click(f"{card} button.apply")
    page.wait_for_selector(f"{card}[data-state=failed]")
    assert "samples must be between 1 and 1600" in page.inner_text(card)
    page.fill(f"{card} input[data-setting=samples]", "3")
    page.fill(f"{card} input[data-setting=noise]", "0.2")
    page.click(f"{card} button.apply")
    page.wait_for_function("document.querySelector('.card[data-method=smooth_grad][data-state=done] .settings')"
                           "?.textContent.includes('samples=3, noise=0.2')")

    page.select_option("#scale-mode", "all")
    page.wait_for_function("location.hash.includes('scale=all')")
    page.wait_for_function("document.querySelectorAll('.card canvas.shared').length === 3")
    tops = {m: float(page.get_attribute(f".card[data-method={m}] .pane", "data-heat-max"))
            for m in ("grad_cam", "guided_backprop", "smooth_grad")}
    top = max(tops.values())
    page.wait_for_function("(t) => [...document.querySelectorAll('.colour-bar .high')].every((e) => "
                           "e.textContent === t)", arg=f"{top:.3g}")
    assert page.locator(".colour-bar[data-cmap=inferno]").count() == 3
    lut = inferno()
    for method, value in tops.items():  # each map's largest heat is drawn at its share of the shared top
        brightest = tuple(lut[round(255 * value / top)])
        assert brightest in colours_of(page, f".card[data-method={method}] canvas.shared"), method
    screenshot(page, "settings-and-shared-scale")
    page.select_option("#scale-mode", "")
    page.wait_for_function("document.querySelectorAll('.card canvas.shared').length === 0")
    assert page.get_attribute(".card[data-method=grad_cam] .colour-bar", "data-cmap") == "jet"


def test_two_classes_side_by_side(controls, page) -> None:
    open_image_view(page, controls, "sample:chelsea")
    done(page, "grad_cam")
    page.fill("#compare-input", "tabby")
    page.keyboard.press("Enter")
    page.wait_for_function("location.hash.includes('compare=281')")
    page.wait_for_selector(".card[data-method=grad_cam][data-state=done] .pane[data-target='281'] img")
    card = ".card[data-method=grad_cam]"
    assert page.locator(f"{card} .pane").count() == 2
    assert "tiger cat" in page.inner_text(f"{card} .pane[data-target=top] .pane-label")
    assert "tabby" in page.inner_text(f"{card} .pane[data-target='281'] .pane-label")
    first, second = (page.get_attribute(f"{card} .pane[data-target='{t}'] img", "src") for t in ("top", "281"))
    assert first != second
    for method in ("guided_backprop", "smooth_grad"):
        page.wait_for_selector(f".card[data-method={method}][data-state=done] .pane[data-target='281'] img")
    page.select_option("#scale-mode", "method")  # each method's two maps on one scale: its largest heat of both
    page.wait_for_function("document.querySelectorAll('.card canvas.shared').length === 6")
    for method in ("grad_cam", "guided_backprop", "smooth_grad"):
        tops = [float(page.get_attribute(f".card[data-method={method}] .pane[data-target='{t}']", "data-heat-max"))
                for t in ("top", "281")]
        highs = page.locator(f".card[data-method={method}] .colour-bar .high").all_inner_texts()
        assert highs == [f"{max(tops):.3g}"] * 2, (method, tops, highs)
    screenshot(page, "two-classes")
    page.select_option("#scale-mode", "")
    page.click("#compare-clear")
    page.wait_for_function("!location.hash.includes('compare=')")
    page.wait_for_function(f"document.querySelectorAll('{card} .pane').length === 1")  # redrawn with one class
    page.wait_for_selector(f"{card}[data-state=done] .pane img")


def test_export_a_view_as_png_and_settings(controls, page) -> None:
    import io
    import json

    from PIL import Image

    page.goto(f"{controls}/#/image?pic=sample:chelsea&target=281&compare=282")
    page.wait_for_selector("#topk li")
    for method in ("grad_cam", "guided_backprop", "smooth_grad"):
        page.wait_for_selector(f".card[data-method={method}][data-state=done] .pane[data-target='282'] img")
    page.click(".card[data-method=smooth_grad] .method-settings summary")
    page.fill(".card[data-method=smooth_grad] input[data-setting=samples]", "2")
    page.click(".card[data-method=smooth_grad] button.apply")
    page.wait_for_function("document.querySelector('.card[data-method=smooth_grad][data-state=done] .settings')"
                           "?.textContent.includes('samples=2')")
    with page.expect_download() as got:
        page.click("#export-json")
    saved = json.loads(Path(got.value.path()).read_text())
    assert got.value.suggested_filename == "convscope-sample_chelsea-281.json"
    assert saved["model"] == "efficientnet_lite0" and saved["picture"] == "sample:chelsea" and saved["compare"] == "282"
    maps = {(m["method"], m["class"].split(" (")[0]): m for m in saved["maps"]}
    assert set(maps) == {(m, c) for m in ("grad_cam", "guided_backprop", "smooth_grad") for c in ("tabby", "tiger cat")}
    assert maps["smooth_grad", "tabby"]["settings"]["samples"] == 2 and maps["grad_cam", "tabby"]["layer"] == "bn2"
    assert maps["grad_cam", "tabby"]["colour_bar"]["cmap"] == "jet"

    with page.expect_download() as got:
        page.click("#export-png")
    picture = Image.open(io.BytesIO(Path(got.value.path()).read_bytes())).convert("RGB")
    if os.environ.get("CONVSCOPE_SCREENSHOTS"):
        picture.save(Path(os.environ["CONVSCOPE_SCREENSHOTS"]) / "export.png")
    assert picture.size == (12 + 4 * 236, 36 + 2 * 294)  # the picture and six maps, four to a row
    cat = picture.crop((12, 52, 12 + 224, 52 + 224)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert 80 < sum(cat) / 3 < 200  # the photo, not a blank tile
    bar = [picture.getpixel((12 + 236 + i, 36 + 224 + 24)) for i in (0, 223)]  # Grad-CAM's jet bar: blue … red
    assert bar[0][2] > 100 > bar[0][0] and bar[1][0] > 100 > bar[1][2]


def pixel(page, x: float, y: float) -> tuple[int, int, int]:
    """The scatter canvas's colour at page position (x, y), over its white background."""
    return tuple(page.evaluate("""([x, y]) => { const c = document.querySelector('#scatter');
        const box = c.getBoundingClientRect(); const px = Math.round((x - box.left) * c.width / box.width);
        const py = Math.round((y - box.top) * c.height / box.height);
        const [r, g, b, a] = c.getContext('2d').getImageData(px, py, 1, 1).data;
        return [r, g, b].map((v) => Math.round((v * a + 255 * (255 - a)) / 255)); }""", [x, y]))


def test_scatter_search_toggles_opacity_lasso_and_open(server, page) -> None:
    page.goto(f"{server}/#/dataset?method=pca")
    page.wait_for_function("window.convscopeScatter && window.convscopeScatter.count() === 6")
    points = [page.evaluate(f"window.convscopeScatter.clientPoint({k})") for k in range(6)]
    page.fill("#scatter-alpha", "1")
    page.dispatch_event("#scatter-alpha", "input")
    opaque = [pixel(page, *p) for p in points]
    assert all(sum(c) < 3 * 240 for c in opaque)  # every point drawn in its class's colour
    page.fill("#scatter-alpha", "0.05")
    page.dispatch_event("#scatter-alpha", "input")
    faint = [pixel(page, *p) for p in points]
    assert all(sum(c) > 3 * 225 for c in faint), (faint, points)  # 5 % opaque: nearly white

    page.fill("#scatter-search", "things")
    page.wait_for_function("document.querySelector('#search-count').textContent.startsWith('3 found')")
    page.fill("#scatter-search", "#4")
    page.wait_for_function("document.querySelector('#search-count').textContent.startsWith('1 found')")
    page.fill("#scatter-search", "")
    page.dispatch_event("#scatter-search", "input")

    page.fill("#scatter-alpha", "1")
    page.dispatch_event("#scatter-alpha", "input")
    page.uncheck(".legend input[data-class='1']")  # 'things' hidden: only the three 'living' points are drawn
    labels = page.evaluate("window.convscopeScatter.labels()")
    for k, p in enumerate(points):
        assert (sum(pixel(page, *p)) == 3 * 255) == (labels[k] == 1), k
    page.check(".legend input[data-class='1']")

    page.click("#scatter-lasso")
    box = page.locator("#scatter").bounding_box()
    left, top, right, bottom = box["x"] + 2, box["y"] + 2, box["x"] + box["width"] - 2, box["y"] + box["height"] - 2
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    page.mouse.move(*corners[0])
    page.mouse.down()
    for corner in corners[1:] + corners[:1]:
        page.mouse.move(*corner, steps=4)
    page.mouse.up()
    page.wait_for_selector("#selection-count")
    assert page.inner_text("#selection-count") == "6 selected"
    assert "living: 3" in page.inner_text("#selection") and page.locator("#selection figure img").count() == 6
    x, y = points[2]
    page.mouse.move(x - 6, y - 6)
    page.mouse.down()
    for dx, dy in ((6, -6), (6, 6), (-6, 6), (-6, -6)):
        page.mouse.move(x + dx, y + dy, steps=3)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#selection-count')?.textContent === '1 selected'")
    screenshot(page, "scatter-tools")
    page.click("#scatter-lasso")

    page.mouse.click(x, y)
    page.wait_for_selector("#open-in-image")
    index = page.evaluate("location.hash.match(/point=(\\d+)/)[1]")
    page.click("#open-in-image")
    page.wait_for_function(f"location.hash.includes('#/image?pic=scan%3A{index}')")
    page.wait_for_selector("#topk li:not(.note)")
    assert page.input_value("#picture-select") == f"scan:{index}"
    assert page.evaluate("document.querySelector('#stage img').naturalWidth") == 224


def test_live_webcam_frames_are_throttled_and_cancel_the_previous_frames_work(lite0, browser, tmp_path) -> None:
    """Chromium's fake camera: frames replace the picture about once a second; each new frame cancels the
    previous frame's Score-CAM; pressing the button again stops the camera."""

    from test_explore_api import wait_for

    explorer = Explorer(lite0, cache=tmp_path / "cache", methods=["grad_cam", "score_cam"])
    context = browser.new_context(bypass_csp=True, permissions=["camera"])
    try:
        with serving(create_app(explorer)) as url:
            page = context.new_page()
            page.set_default_timeout(60_000)
            open_image_view(page, url, "sample:chelsea")
            page.click("#webcam-live")
            page.wait_for_function("Number(document.querySelector('#webcam-status').dataset.frames) >= 1")
            first = page.evaluate("location.hash")
            assert "pic=upload" in first and "webcam-1.jpg" in page.inner_text("#picture-select")
            page.wait_for_function("Number(document.querySelector('#webcam-status').dataset.frames) >= 3")
            taken = [float(t) for t in page.get_attribute("#webcam-status", "data-taken").split()]
            assert all(b - a >= 999 for a, b in zip(taken, taken[1:], strict=False))  # frames a second apart
            assert page.evaluate("location.hash") != first
            wait_for(lambda: explorer.background.status()["cancelled"] >= 1)  # an earlier frame's Score-CAM
            screenshot(page, "webcam")
            page.click("#webcam-live")
            page.wait_for_function("document.querySelector('#webcam-status').textContent.includes('stopped')")
            frames = page.get_attribute("#webcam-status", "data-frames")
            page.wait_for_timeout(2500)
            assert page.get_attribute("#webcam-status", "data-frames") == frames
            page.wait_for_selector(".card[data-method=grad_cam][data-state=done] img")  # the last frame's maps
    finally:
        context.close()


def test_relevance_of_a_channel_and_the_top_concepts(controls, page) -> None:
    """The image view lists the channels of blocks.4 that carried most of tabby's relevance, each with its
    conditional map; a click opens that channel in the layer view, which shows its relevance, share and rank."""
    open_image_view(page, controls, "sample:chelsea")
    page.click("#topk li:has-text('tabby')")
    page.wait_for_function("location.hash.includes('target=281')")
    assert page.input_value("#concepts-layer") == "blocks.4"
    page.click("#concepts-button")
    page.wait_for_selector("#concepts-list .concept-slot:nth-child(2)[data-state=done] img")
    slots = page.locator("#concepts-list .concept-slot")
    assert slots.count() == 6 and "for tabby" in page.inner_text("#concepts")
    shares = [float(t.split(": ")[1].split(" %")[0]) for t in slots.locator(".concept-label").all_inner_texts()]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0
    assert page.get_attribute("#concepts-list .concept-slot:first-child .colour-bar", "data-cmap") == "bwr"
    screenshot(page, "top-concepts")
    best = slots.first.get_attribute("data-channel")
    slots.first.click()
    page.wait_for_function(f"location.hash.startsWith('#/layer') && location.hash.includes('channel={best}')")
    page.wait_for_selector("#relevance-text")
    text = page.inner_text("#relevance-text")
    assert "relevance for tabby" in text and "rank 1 of 112" in text and f"{shares[0]:.1f} %" in text
    screenshot(page, "channel-relevance")


def test_metric_badges_and_a_cancellable_table(slow_last, page) -> None:
    """Under every map: deletion and the random-logit check; the table of check's metrics for the picture fills
    in the background, one method after another, and its cancel button stops the rest."""
    import json
    import time
    import urllib.request

    open_image_view(page, slow_last, "sample:chelsea")
    for method in ("grad_cam", "guided_backprop", "smooth_grad", "occlusion"):
        page.wait_for_selector(f".card[data-method={method}] .metric-badges[data-state=done]", timeout=300_000)
    badge = page.locator(".card[data-method=grad_cam] .badge[data-metric=random_logit]")
    passes = badge.get_attribute("data-passes") == "true"
    assert badge.inner_text().startswith("✓" if passes else "✗")
    assert ("warn" in badge.get_attribute("class")) == (not passes)
    assert page.inner_text(".card[data-method=grad_cam] .badge[data-metric=pixel_flipping]").startswith("deletion ")

    page.click("#metrics-button")
    page.wait_for_selector("#metrics-table tr[data-method=grad_cam][data-state=done]")
    page.click("#metrics-cancel")  # the methods still to come (one at a time, slowest last) are cancelled
    page.wait_for_function("document.querySelector('#metrics-note').textContent.startsWith('Cancelled')")
    states = page.eval_on_selector_all("#metrics-table tr[data-method]", "rows => rows.map(r => r.dataset.state)")
    assert states[0] == "done" and "cancelled" in states and None not in states, states
    assert "cancelled" in page.inner_text("#metrics-table tr[data-state=cancelled]")

    def background() -> dict:
        request = urllib.request.Request(f"{slow_last}/api/queue", headers={"X-Convscope-Request": "1"})
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)["background"]

    deadline = time.monotonic() + 120
    while background()["running"] is not None or background()["waiting"]:  # the server let its work go
        assert time.monotonic() < deadline, background()
        time.sleep(0.2)
    assert background()["cancelled"] >= 1
    heads = page.locator("#metrics-table th").all_inner_texts()
    assert heads[0] == "method" and "pixel flipping ↓" in heads and "sparseness ↑" in heads
    assert "model randomisation ↓" in heads and not any("pointing" in t for t in heads)  # no masks here
    cell = page.locator("#metrics-table tr[data-method=grad_cam] td[data-metric=sparseness]")
    request = urllib.request.Request(f"{slow_last}/api/metrics?pic=sample:chelsea&method=grad_cam&metrics=sparseness",
                                     headers={"X-Convscope-Request": "1"})
    with urllib.request.urlopen(request) as answer:
        expected = json.load(answer)["metrics"][0]["value"]
    assert float(cell.get_attribute("data-value")) == pytest.approx(expected)
    screenshot(page, "metrics")
