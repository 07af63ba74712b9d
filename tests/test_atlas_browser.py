"""The atlas's static site in a real browser (Debian's Chromium driven by Playwright): opened from a folder
(file://), from a static web server (http://) and through the explorer (--atlas), following its links.

Set ``CONVSCOPE_SCREENSHOTS=FOLDER`` to keep a screenshot of each page (docs/atlas/*.png come from a real atlas:
docs/atlas_figures.py).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chromium import launched, needs_chromium
from fake_atlas import INPUT, AtlasNet, make_atlas

from convscope.atlas.site import write_site

sync_api = pytest.importorskip("playwright.sync_api")

WAIT = 60_000  # ms; the CPU may be shared

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    out = make_atlas(tmp_path_factory.mktemp("browser") / "atlas")
    write_site(out, AtlasNet(), INPUT)
    return out


@pytest.fixture(scope="module")
def browser():
    yield from launched()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    opened.set_default_timeout(WAIT)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    context.close()
    assert not errors, errors


@contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """``python -m http.server -d folder`` in a thread; yields its URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("CONVSCOPE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def broken_images(page) -> list[str]:
    """Pictures of the page that did not load (lazy ones are loaded first)."""
    return page.evaluate("""async () => {
        const images = [...document.images];
        images.forEach((img) => { img.loading = "eager"; });
        await Promise.all(images.map((img) => img.decode().catch(() => null)));
        return images.filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.src);
    }""")


def walk_the_site(page, base: str) -> None:
    """Index → graph node → layer page → a channel → a channel it drives → back to the index via the trail."""
    page.goto(f"{base}/index.html")
    assert page.locator("#graph .node").count() == 6  # input + 5 layers
    assert page.locator("#graph .node.in-atlas").count() == 2
    assert broken_images(page) == []
    screenshot(page, "index")
    page.click("#graph [data-node='blocks.1'] .name a")
    page.wait_for_url("**/layers/blocks.1/index.html")
    assert page.locator("#grid .cell").count() == 12
    assert page.locator("#grid .cell.dead").count() == 2
    assert broken_images(page) == []
    screenshot(page, "layer")
    shown = page.eval_on_selector_all("#grid .cell", "cells => cells.map((c) => Number(c.dataset.channel))")
    assert shown != sorted(shown)  # similar channels together (the layer's order)
    page.select_option("#order", "channel")  # the page's script orders the grid by channel number
    assert page.eval_on_selector_all("#grid .cell", "cells => cells.map((c) => Number(c.dataset.channel))") \
        == sorted(shown)
    page.check("#hide-dead")
    assert page.locator("#grid .cell.dead").first.is_hidden()
    page.click("#grid .cell[data-channel='4']")
    page.wait_for_url("**/layers/blocks.1/channels/4.html")
    assert page.locator("#facets img").count() == 4
    assert page.locator("#top .patches img").count() == 18 and page.locator("#bottom .patches img").count() == 18
    assert page.locator("#visualisations img").count() == 6  # visualisation, negative, 4 facets
    assert page.locator("#classes li").count() == 5
    assert broken_images(page) == []
    following = page.get_attribute("a[rel=next]", "href")
    assert following == "9.html"  # the next channel in the layer's order (fake_atlas: channel·5 mod 12)
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/layers/blocks.1/channels/9.html")
    page.go_back()
    page.click("#driven-by a >> nth=0")  # a channel of the layer before
    page.wait_for_url("**/layers/blocks.0/channels/4.html")
    assert "blocks.0" in page.inner_text("h1")
    screenshot(page, "channel")
    page.click("header nav a:text('atlas')")
    page.wait_for_url("**/index.html")
    assert page.locator("#graph").is_visible()


def test_the_atlas_opens_from_a_folder(atlas, page) -> None:
    walk_the_site(page, atlas.as_uri())


def test_the_atlas_opens_from_a_static_web_server(atlas, page) -> None:
    with static_server(atlas) as url:
        walk_the_site(page, url)


def test_a_half_written_atlas_says_so_in_the_browser(tmp_path, page) -> None:
    out = make_atlas(tmp_path / "atlas", complete=False, trained=False, missing={"blocks.1": {2, 7}})
    write_site(out, AtlasNet(), INPUT)
    page.goto((out / "index.html").as_uri())
    assert "not complete" in page.inner_text("#unfinished") and "untrained model" in page.inner_text("#untrained")
    assert page.inner_text("#layers tr[data-layer='blocks.1'] .state") == "10 of 12 channels done"
    page.click("#layers a:text('blocks.1')")
    assert page.locator("#grid .cell.not-computed").count() == 2
    page.click("#grid .cell[data-channel='7']")
    assert page.inner_text("#not-computed") == "This channel is not computed yet."


def test_the_explorer_serves_the_atlas_and_links_a_channel_to_it(browser, tmp_path) -> None:
    """Under the explorer's security policy (no bypass): the layer view links the channel to its atlas page."""
    pytest.importorskip("uvicorn")
    from test_explore_api import serving

    from convscope.explore import Explorer, create_app
    from convscope.models import load_model

    model = load_model("fashion_cnn", device="cpu")
    out = make_atlas(tmp_path / "atlas", layers={"conv1": [32, 28, 28]}, model="fashion_cnn", input_size=[1, 28, 28],
                     missing={"conv1": set(range(3, 32))}, complete=False)
    write_site(out, model, [1, 28, 28])
    explorer = Explorer(model, atlas=out, token="secret", cache=tmp_path / "cache")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT)
        page.on("pageerror", lambda error: errors.append(str(error)))
        with serving(create_app(explorer)) as url:
            page.goto(f"{url}/?token=secret#/layer?pic=sample:chelsea&layer=conv1&channel=1")
            link = page.locator("#atlas-link")
            link.wait_for()
            assert link.get_attribute("href") == "/atlas/layers/conv1/channels/1.html"
            assert page.get_attribute("#atlas-layer-link", "href") == "/atlas/layers/conv1/index.html"
            with context.expect_page() as opened:
                link.click()
            atlas_page = opened.value
            atlas_page.wait_for_load_state()
            assert "conv1" in atlas_page.inner_text("h1") and atlas_page.locator("#facets img").count() == 4
            assert broken_images(atlas_page) == []
            atlas_page.click("header nav a:text('conv1')")
            atlas_page.select_option("#order", "channel")  # its script runs under the explorer's policy
            assert atlas_page.locator("#grid .cell").first.get_attribute("data-channel") == "0"
            assert atlas_page.locator("#grid .cell.not-computed").count() == 29
    finally:
        context.close()
    assert not errors, errors
