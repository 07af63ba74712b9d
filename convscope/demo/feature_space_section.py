"""Gallery section: a small data set scan and what it shows — top patches, dead filters, neighbours, maps.

Fashion-MNIST with convscope's own CNN (2 000 test pictures) when the data set is installed, and
crops of the bundled photos through the gallery's ImageNet model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from convscope.data import FashionMNIST, FirstPictures, SampleCrops, has_fashion_mnist
from convscope.models.layers import conv_layers
from convscope.models.loading import load_model
from convscope.render.gallery import Gallery
from convscope.render.layout import text_picture, titled
from convscope.scan import Scan
from convscope.scan.projections import top_projections

SECTION = "Feature space"
FASHION_PICTURES = 2000
TSNE_POINTS = 1000
LITE_LAYERS = ("blocks.2.1", "blocks.3.2")
LITE_PROJECTED = 3  # channels shown with projections (each costs a backward pass of its top pictures)
CROP_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "coins", "brick", "grass", "gravel", "china",
               "flower")


def build(gallery: Gallery, context) -> None:
    with tempfile.TemporaryDirectory(prefix="convscope-demo-scan-") as work:
        if has_fashion_mnist():
            _fashion(gallery, Path(work) / "fashion", context)
        else:
            gallery.add(SECTION, "fashion_mnist_missing.png",
                        text_picture(["Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist`",
                                      "(scripts/setup does it) to see the Fashion-MNIST CNN's feature space."]),
                        "Fashion-MNIST views skipped", "The data set was not found on this machine.")
        _photo_crops(gallery, Path(work) / "crops", context)


def _fashion(gallery: Gallery, work: Path, context) -> None:
    model = load_model("fashion_cnn", device=context.model.device)
    pictures = FirstPictures(FashionMNIST(split="test"), FASHION_PICTURES)
    result = Scan(model, ["relu1", "relu2", "relu3", "relu7"], k=9).run(pictures, work, batch_size=250,
                                                                       progress=context.progress)
    scanned = f"{result.count} Fashion-MNIST test pictures through convscope's Fashion-MNIST CNN"
    for layer, note in (("relu2", "Second convolution: strokes, corners and edges of garments."),
                        ("relu3", "Third convolution: larger parts — trouser legs, shoe soles, collars.")):
        view = result.top_patches(layer, channels=range(12))
        gallery.add(SECTION, f"fashion_top_patches_{layer}.png", view.picture(),
                    f"Maximally activating patches, {layer}",
                    f"{note} For each channel, the 9 of {scanned} that excite it most, cut to the exact receptive "
                    "field of the strongest position (grey: zero padding beyond the picture), with the activation.")
    context_view = result.top_patches("relu3", channels=range(6))
    gallery.add(SECTION, "fashion_top_patches_relu3_context.png", context_view.picture(context=True),
                "The same patches in their pictures",
                "Girshick et al.'s presentation: the whole picture with the receptive field of the strongest "
                "position drawn in.")
    figure = top_projections(result, "relu3", channels=range(6), k=9, model=model)
    gallery.add(SECTION, "fashion_top_projections_relu3.png", figure.picture(),
                "Top-9 activations projected to pixels (Zeiler & Fergus figure 2)",
                "Left of each channel's patches: each of its 9 strongest activations alone, passed down to pixels "
                f"by the {figure.method.replace('_', ' ')} and cut to the same receptive-field box (grey = 0). "
                "Through the max-pooling switches every projection shows which strokes of that very picture the "
                "unit responded to — a shoe sole, a collar edge —, where the patch alone shows everything in the "
                f"field. {figure.note[0].upper() + figure.note[1:]}.")
    dead = result.dead_filters("relu3")
    gallery.add(SECTION, "fashion_dead_filters.png", dead.picture(), "Dead filters",
                f"Share of the {result.count} pictures in which each relu3 channel is positive anywhere: "
                f"{len(dead.channels)} of {dead.statistics.channels} channels (red) fire in at most 1% of them. "
                "Dead channels waste capacity; many of them are a symptom of a too large learning rate.")
    queries = [_first_of_class(result, label) for label in (0, 2, 5, 6, 8)]
    neighbours = result.neighbors(queries, "relu7", k=8)
    gallery.add(SECTION, "fashion_neighbors.png", neighbours.picture(), "Nearest neighbours: fc7 vs pixels",
                "Krizhevsky et al.'s figure on Fashion-MNIST: the 8 nearest pictures by the 256-d fc7 code (after "
                "ReLU) and by raw pixels. Neighbours of another class are framed red.")
    pca = result.embed("relu7", method="pca")
    gallery.add(SECTION, "fashion_pca.png", pca.scatter(), "PCA of fc7",
                f"The fc7 codes projected on their first two principal components; {pca.note}.")
    tsne = result.embed("relu7", method="tsne", max_points=TSNE_POINTS, jobs=1)
    gallery.add(SECTION, "fashion_tsne.png", tsne.scatter(), "t-SNE of fc7",
                f"openTSNE on {len(tsne.points)} fc7 codes: the classes separate; shirts, pullovers and coats "
                "overlap, as they do for the classifier.")
    gallery.add(SECTION, "fashion_tsne_grid.png", tsne.grid_picture(side=24, tile_size=28), "t-SNE grid",
                "Karpathy's layout: 576 of the mapped pictures snapped to a 24×24 grid by an optimal assignment, so "
                "that neighbours on the map are neighbours on the grid.")


def _photo_crops(gallery: Gallery, work: Path, context) -> None:
    model = context.model
    names = dict(model.net.named_modules())
    layers = [name for name in LITE_LAYERS if name in names]
    if not layers:
        convs = conv_layers(model.net)
        layers = [convs[len(convs) // 3]]
    crops = SampleCrops(CROP_PHOTOS, scales=(0.5,), overlap=0.0)  # crops that do not overlap
    result = Scan(model, layers, k=6).run(crops, work, batch_size=32, progress=context.progress)
    for layer in layers:
        view = result.top_patches(layer, channels=range(10))
        field = result.receptive_field(layer)
        gallery.add(SECTION, f"photo_top_patches_{layer.replace('.', '_')}.png",
                    titled(view.picture(tile_size=72), f"{model.name} on {result.count} crops of the sample photos"),
                    f"Maximally activating patches of {model.name}, {layer}",
                    f"The ImageNet model's {layer} ({field.size()[0]}-pixel receptive field) over {result.count} "
                    "non-overlapping half-size crops of eleven bundled photos: each channel prefers one texture, "
                    "colour or edge. Strong responses often sit at a crop's border, where the field reaches into the "
                    "zero padding (grey).")
    layer = layers[0]
    figure = top_projections(result, layer, channels=range(LITE_PROJECTED), k=6, model=model)
    gallery.add(SECTION, f"photo_top_projections_{layer.replace('.', '_')}.png", figure.picture(tile_size=96),
                f"Top activations projected to pixels, {model.name} {layer}",
                f"Zeiler & Fergus's figure 2 on the ImageNet model: {figure.note}. The deconvnet reads a picture "
                "only through max-pooling's switches; guided backprop also masks by the forward pass. The "
                "projections fill only the middle of the receptive-field box: the effective field is much smaller "
                "than the theoretical one.")


def _first_of_class(result, label: int) -> int:
    matches = (result.labels == label).nonzero().flatten()
    return int(matches[0]) if len(matches) else 0
