"""Regenerate the screenshots of docs/atlas.md from a real atlas of the embedded EfficientNet-Lite0 (CPU: about 15
minutes; a GPU: about a minute).

    python docs/atlas_figures.py [--work FOLDER] [--device cuda]
    python docs/atlas_figures.py --precision-figure    # only atlas/precision.png (CPU: about 2 minutes)

It scans the crops of the bundled photos at two layers, makes the atlas of every channel of both (at the settings
below, smaller than `convscope atlas`'s defaults, which are written on the index page) and opens it in Chromium
(Debian's, driven by Playwright) from the folder, as a reader would: the index with the graph, the first layer's
grid and the page of one channel of the second layer. The scan and the atlas stay in --work, so a second run only
takes the screenshots.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import convscope as cs
from convscope.atlas.build import make_atlas
from convscope.atlas.visualise import Recipe
from convscope.data import SampleCrops
from convscope.scan import Scan

OUT = Path(__file__).parent / "atlas"
LAYERS = ("blocks.1", "blocks.2")
RECIPE = Recipe(size=96, steps=96, facets=2)
K = 9
CROP_SCALES = (0.6, 0.4)  # of each bundled photo's short side: 351 crops
CHANNEL = ("blocks.2", 5)  # the channel page shown
CHROMIUM = os.environ.get("CONVSCOPE_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 860}


def build(work: Path, device: str | None) -> Path:
    model = cs.load_model(device=device)
    crops = SampleCrops(scales=CROP_SCALES, overlap=0.25)
    scan = Scan(model, list(LAYERS), k=K).run(crops, work / "scan", batch_size=32)
    return make_atlas(model, list(LAYERS), work / "atlas", scan=scan, recipe=RECIPE, k=K)


def screenshots(atlas: Path) -> None:
    from playwright.sync_api import sync_playwright

    layer, channel = CHANNEL
    pages = {"index": "index.html", "layer": f"layers/{LAYERS[0]}/index.html",
             "channel": f"layers/{layer}/channels/{channel}.html"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=VIEWPORT)
        for name, path in pages.items():
            page.goto((atlas / path).as_uri())
            page.evaluate("""async () => {
                const images = [...document.images];
                images.forEach((img) => { img.loading = "eager"; });
                await Promise.all(images.map((img) => img.decode().catch(() => null)));
            }""")
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
            print(OUT / f"{name}.png")
        browser.close()


def precision_figure(device: str | None) -> None:
    """Channels 0–7 of blocks.4 at the atlas's default recipe, in float32 (top) and bfloat16 (bottom), each captioned
    with the channel's mean activation on the picture, measured in float32."""
    import torch

    from convscope.atlas.visualise import visualise_channels
    from convscope.atlas.working_copy import working_copy
    from convscope.render.layout import grid

    model = cs.load_model(device=device)
    fast = working_copy(model, ["blocks.4"])
    channels = list(range(8))
    rows, labels = [], []
    for precision in ("float32", "bfloat16"):
        made = visualise_channels(fast, "blocks.4", channels, Recipe(facets=0, negative=False, precision=precision))
        rows.append(made.positive)
        labels += [f"{precision} {c}: {v:.1f}" for c, v in zip(channels, made.values[:, 0].tolist(), strict=True)]
    grid(torch.cat(rows), columns=len(channels), labels=labels).save(OUT / "precision.png")
    print(OUT / "precision.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "convscope-atlas-docs",
                        help="where the scan and the atlas are kept (default: %(default)s)")
    parser.add_argument("--device", help="cpu, cuda, … (default: CUDA when available)")
    parser.add_argument("--precision-figure", action="store_true", help="only make atlas/precision.png")
    args = parser.parse_args()
    if args.precision_figure:
        precision_figure(args.device)
        return
    start = time.perf_counter()
    atlas = build(args.work, args.device)
    print(f"atlas in {atlas} ({time.perf_counter() - start:.0f} s)")
    OUT.mkdir(parents=True, exist_ok=True)
    screenshots(atlas)


if __name__ == "__main__":
    main()
