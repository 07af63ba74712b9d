"""Explorer latency in a real browser: click → first map, and live-occlusion updates, idle and while Score-CAM runs.

    convscope explore --methods grad_cam cam saliency guided_backprop &      # prints its URL with its token
    python benchmarks/explorer.py 'http://127.0.0.1:8765/?token=…' [--chromium /usr/bin/chromium] [--score-cam]

For each of five photos, once the workers are idle: type a class, press Enter, and time until the first map is on
the page. Then 20 occluder moves on chelsea, each after the previous answer has been shown. With ``--score-cam``,
each measurement is taken while a Score-CAM map (1 280 masked passes on Lite0) is being computed in the
background, started just before and cancelled after. Use a freshly started explorer: answers are cached, so a
second run measures the cache.
"""

from __future__ import annotations

import argparse
import statistics

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
PHOTOS = [("sample:coffee", "espresso"), ("sample:astronaut", "space shuttle"), ("sample:flower", "daisy"),
          ("sample:rocket", "missile"), ("sample:china", "palace")]
IDLE = ("window.queueStatus && [window.queueStatus, window.queueStatus.background]"
        ".every((lane) => lane.running === null && lane.waiting.length === 0)")
SCORE_CAM = """(target) => {
    fetch(`/api/explain?pic=sample:chelsea&method=score_cam&target=${target}`,
          {headers: {"X-Convscope-Request": "1"}}).catch(() => {});
}"""
SCORE_CAM_RUNS = ("window.queueStatus && window.queueStatus.background.running && "
                  "window.queueStatus.background.running.what.startsWith('Score-CAM') && "
                  "(window.queueStatus.background.running.progress || {}).done >= 1")
CANCEL = """() => fetch('/api/cancel', {method: 'POST', headers: {'X-Convscope-Request': '1'}})"""
FIRST_MAP = """(cls) => new Promise((resolve) => {
    const start = performance.now();
    const seen = new MutationObserver(() => {
      if (document.querySelector('.card[data-state=done]')) { seen.disconnect(); resolve(performance.now() - start); }
    });
    seen.observe(document.getElementById('maps'), {subtree: true, attributes: true, childList: true});
    document.querySelector('#class-input').dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));
})"""
MOVE = """([x, y]) => new Promise((resolve) => {
    const start = performance.now();
    const seen = new MutationObserver(() => { seen.disconnect(); resolve(performance.now() - start); });
    seen.observe(document.getElementById('occlusion-readout'), {subtree: true, childList: true, characterData: true});
    const stage = document.getElementById('stage');
    for (const kind of ['pointerdown', 'pointerup'])
      stage.dispatchEvent(new PointerEvent(kind, {clientX: x, clientY: y, pointerId: 1, bubbles: true}));
})"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--score-cam", action="store_true", help="measure while Score-CAM runs in the background")
    args = parser.parse_args()
    base = args.url.split("?")[0].rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=ARGS)
        # bypass_csp: wait_for_function evaluates strings, which the explorer's CSP forbids
        page = browser.new_context(viewport={"width": 1300, "height": 900}, bypass_csp=True).new_page()
        page.set_default_timeout(600_000)
        page.goto(args.url)  # with ?token=…: the page keeps it in a cookie
        targets = iter(range(1, 1000, 7))  # a new class each time: never a cached Score-CAM

        def busy() -> None:
            if args.score_cam:
                page.evaluate(SCORE_CAM, next(targets))
                page.wait_for_function(SCORE_CAM_RUNS, polling=50)

        def calm() -> None:
            if args.score_cam:
                page.evaluate(CANCEL)
            page.wait_for_function(IDLE, polling=200)

        firsts = []
        for picture, name in PHOTOS:
            page.goto(f"{base}/#/image?pic={picture}")
            page.wait_for_selector(".card[data-state=done]")
            page.wait_for_function(IDLE, polling=200)
            page.fill("#class-input", name)
            busy()
            firsts.append(page.evaluate(FIRST_MAP, name) / 1000)
            calm()
            print(f"first map, {picture} → {name}: {firsts[-1]:.2f} s", flush=True)
        page.goto(f"{base}/#/image?pic=sample:chelsea")
        page.wait_for_selector("#topk li")
        page.wait_for_function(IDLE, polling=200)
        box = page.locator("#stage").bounding_box()
        busy()
        moves = [page.evaluate(MOVE, [box["x"] + 20 + (i * 37) % 290, box["y"] + 20 + (i * 61) % 290]) / 1000
                 for i in range(20)]
        calm()
        browser.close()
    print("while Score-CAM runs:" if args.score_cam else "idle workers:")
    print(f"click → first map: median {statistics.median(firsts):.2f} s ({', '.join(f'{t:.2f}' for t in firsts)})")
    print(f"live occlusion: median {statistics.median(moves):.3f} s, 90th percentile "
          f"{sorted(moves)[int(0.9 * len(moves)) - 1]:.3f} s over {len(moves)} moves")


if __name__ == "__main__":
    main()
