"""Gallery section: a small atlas — a few channels of one layer with their pictures, dataset examples, statistics
and pages — written as a real static atlas beside the gallery, and a figure of its channels.

Demo-sized settings (6 channels, 64 px, 48 steps, 2 facets, the top 6 of 58 crops); `convscope atlas`'s
defaults are every channel at 128 px, 256 steps, 4 facets and the top 9.
"""

from __future__ import annotations

from pathlib import Path

from convscope.atlas.build import make_atlas
from convscope.atlas.figure import channels_picture
from convscope.atlas.visualise import Recipe
from convscope.data import SampleCrops
from convscope.models.layers import conv_layers
from convscope.render.gallery import Gallery
from convscope.scan import Scan

SECTION = "Atlas"
LAYER = "blocks.3"
CHANNELS: tuple[int, ...] = (2, 4, 10, 11, 13, 14)  # of blocks.3; the first six channels of another model's layer
RECIPE = Recipe(size=64, steps=48, facets=2)
TOP = 6
CROP_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "coins", "brick", "grass", "gravel", "china",
               "flower")
ATLAS, SCAN = "atlas", "atlas_scan"  # folders inside the gallery


def build(gallery: Gallery, context) -> None:
    model = context.model
    layer, channels = LAYER, CHANNELS
    if layer not in dict(model.net.named_modules()):
        convs = conv_layers(model.net)
        layer, channels = convs[len(convs) // 3], tuple(range(6))
    crops = SampleCrops(CROP_PHOTOS, scales=(0.5,), overlap=0.0)  # crops that do not overlap
    folder = Path(gallery.folder)
    scan = Scan(model, [layer], k=TOP).run(crops, folder / SCAN, batch_size=32, overwrite=True,
                                           progress=context.progress)
    out = make_atlas(model, [layer], folder / ATLAS, scan=scan, channels=channels, recipe=RECIPE, k=TOP,
                     overwrite=True, progress=context.progress)
    gallery.add(SECTION, "atlas_channels.png", channels_picture(out, layer, channels, top=TOP),
                f"An atlas of {model.name}, {layer}: {len(channels)} channels",
                f"`convscope atlas` on {len(channels)} channels of {layer}, with a scan of {scan.count} "
                "non-overlapping crops of eleven bundled photos: each channel's feature visualisation (decorrelated "
                "Fourier image, jitter, scaling and rotation) beside the crops that excite it most, cut to the "
                "receptive field of the strongest unit (grey: zero padding). Demo settings: "
                f"{RECIPE.size} px, {RECIPE.steps} steps, {RECIPE.facets} facets (the command's defaults: 128 px, "
                "256 steps, 4 facets, every channel). The atlas itself — its graph of the model, the layer's "
                "grid, each channel's negative picture, facets, top and bottom patches with their projections, "
                "top classes and statistics — is a static site in the gallery's folder:",
                link=(f"{ATLAS}/index.html", f"{ATLAS}/index.html"))
