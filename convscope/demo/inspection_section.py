"""Gallery section: predictions, filters, activation maps, per-layer statistics."""

from __future__ import annotations

from convscope.inspection import activation_maps_batch, filters, layer_statistics, predict
from convscope.inspection.filters import Filters
from convscope.models.layers import conv_layers
from convscope.render.gallery import Gallery
from convscope.render.layout import grid, stack, text_picture, titled

SECTION = "Weights and activations"


def build(gallery: Gallery, context) -> None:
    model, photos = context.model, context.photos
    pictures = [p.pixels for p in photos]
    inputs = model.preprocess.fit(pictures)
    result = predict(model, pictures, k=5)
    cards = [stack([grid(inputs[b:b + 1], tile_size=160, padding=0), text_picture(result.lines(b), size=12)],
                   direction="vertical", gap=2) for b in range(len(photos))]
    rows = [stack(cards[i:i + 3], gap=16) for i in range(0, len(cards), 3)]
    gallery.add(SECTION, "predictions.png", titled(stack(rows, direction="vertical", gap=12), "Top-5 predictions"),
                "Predictions", f"{model.name} on the bundled photos, after its preprocessing "
                               "(short side resized, centre crop). Probabilities are softmax outputs.")

    convs = conv_layers(model.net)
    first = filters(model, convs[0])
    gallery.add(SECTION, "filters_first_layer.png", first.picture(tile_size=48), "First-layer filters",
                "Each colour tile is one filter of the first convolution, scaled so that 0 is mid-grey. "
                "EfficientNet-Lite's stem uses 3×3 kernels, so the tiles are small colour and edge detectors.")
    kinds: dict[str, Filters] = {}
    for name in convs[1:]:
        view = filters(model, name)
        kinds.setdefault(view.kind, view)
    for kind, view in kinds.items():
        gallery.add(SECTION, f"filters_{kind}.png", view.picture(max_filters=32), f"Deeper filters: {kind}",
                    _FILTER_NOTES[kind])

    chelsea = context.photo("chelsea")
    layers = ["bn1", "blocks.1.1.bn2", "blocks.3.0.bn2", "blocks.5.0.bn2"]
    layers = [name for name in layers if name in dict(model.net.named_modules())] or convs[:3]
    for name in layers:
        maps = activation_maps_batch(model, [chelsea.pixels], name)[0]
        gallery.add(SECTION, f"activations_{name.replace('.', '_')}.png", maps.picture(max_channels=32),
                    f"Activation maps at {name}",
                    "Every channel's response to the cat photo, each scaled to its own range (black = 0). "
                    "Early maps still look like the image; deeper ones are coarse and sparse. Channels with no "
                    "positive value for this image are framed red as dead.")

    stats = layer_statistics(model, [chelsea.pixels], "tabby")
    gallery.add(SECTION, "layer_statistics.png", stats.picture(), "Per-layer statistics",
                "For the cat photo and the class 'tabby', per layer: activation range, mean and share of zeros; "
                "the range of the class score's gradient at the layer; the weights and their gradients — "
                "with the first channels of each as pictures (the ConvNetJS view).")
    stats.to_csv(gallery.folder / "layer_statistics.csv")


_FILTER_NOTES = {
    "depthwise": "A depthwise convolution filters each channel on its own: one greyscale 3×3 or 5×5 tile per "
                 "channel (0 = mid-grey).",
    "pointwise": "A 1×1 (pointwise) convolution only mixes channels, so its weights are shown as a matrix: "
                 "one row per output channel, one column per input channel.",
    "per-channel": "One row per filter, one greyscale tile per input channel.",
    "colour": "Colour filters.",
}
