"""Explorer latency in a real browser: click → first map, and live-occlusion updates.

    convscope explore --methods grad_cam cam saliency guided_backprop &      # prints its URL
    python benchmarks/explorer.py http://127.0.0.1:8765 [--chromium /usr/bin/chromium]

For each of five photos, once the worker is idle: type a class, press Enter, and time until the first map is on
the page. Then 20 occluder moves on chelsea, each after the previous answer has been shown. Use a freshly started
explorer: answers are cached, so a second run measures the cache.
"""

from __future__ import annotations

import argparse
import statistics

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
PHOTOS = [("sample:coffee", "espresso"), ("sample:astronaut", "space shuttle"), ("sample:flower", "daisy"),
          ("sample:rocket", "missile"), ("sample:china", "palace")]
IDLE = "window.queueStatus && window.queueStatus.running === null && window.queueStatus.waiting.length === 0"
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
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(600_000)
        firsts = []
        for picture, name in PHOTOS:
            page.goto(f"{args.url}/#/image?pic={picture}")
            page.wait_for_selector(".card[data-state=done]")
            page.wait_for_function(IDLE, polling=200)
            page.fill("#class-input", name)
            firsts.append(page.evaluate(FIRST_MAP, name) / 1000)
            print(f"first map, {picture} → {name}: {firsts[-1]:.2f} s", flush=True)
        page.goto(f"{args.url}/#/image?pic=sample:chelsea")
        page.wait_for_selector("#topk li")
        page.wait_for_function(IDLE, polling=200)
        box = page.locator("#stage").bounding_box()
        moves = [page.evaluate(MOVE, [box["x"] + 20 + (i * 37) % 290, box["y"] + 20 + (i * 61) % 290]) / 1000
                 for i in range(20)]
        browser.close()
    print(f"click → first map: median {statistics.median(firsts):.2f} s ({', '.join(f'{t:.2f}' for t in firsts)})")
    print(f"live occlusion: median {statistics.median(moves):.3f} s, 90th percentile "
          f"{sorted(moves)[int(0.9 * len(moves)) - 1]:.3f} s over {len(moves)} moves")


if __name__ == "__main__":
    main()
