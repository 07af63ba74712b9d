"""Invariance curves (Zeiler & Fergus 2014, Fig. 5): how features and the class probability change under
vertical translation, scaling and rotation, with strips of the transformed pictures as the paper shows
them. The class followed is each picture's top prediction, one class for all, or one per picture (the
true labels, as in the paper). https://arxiv.org/abs/1311.2901
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.analysis.transforms import TRANSFORMS, transform_batch
from convscope.hooks import capture, inspection_mode
from convscope.models.layers import conv_layers, describe_layers, layer_name
from convscope.models.model import Model, as_model
from convscope.models.preprocessing import Preprocess, center_crop
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr
from convscope.targets import TargetLike, TopClass, as_target

DEFAULT_AMOUNTS = {
    "translate": torch.linspace(-60, 60, 13),  # pixels, at the model's resize resolution
    "scale": torch.linspace(0.6, 1.8, 13),
    "rotate": torch.arange(0, 361, 15, dtype=torch.float32),
}
IDENTITY = {"translate": 0.0, "scale": 1.0, "rotate": 0.0}
STRIP_LENGTH = 5  # transformed pictures shown per input
STRIP_SIDE = 64
UNITS = {"translate": "vertical shift (pixels)", "scale": "scale factor", "rotate": "rotation (degrees)"}


@dataclass
class InvarianceCurves:
    """``distances[layer]`` and ``probabilities`` are ``[N,A]``: picture × transform amount.

    ``strips`` ``[N,S,3,h,w]`` are some of the transformed pictures as the model saw them, at the
    amounts ``strip_amounts`` ``[S]``; ``given`` says whether the classes were given (true labels)
    rather than each picture's top prediction.
    """

    __repr__ = short_repr

    kind: str
    amounts: Tensor
    distances: dict[str, Tensor]
    probabilities: Tensor
    class_names: list[str]
    picture_names: list[str]
    strips: Tensor | None = None
    strip_amounts: Tensor | None = None
    given: bool = False

    def strip_picture(self, tile_size: int = STRIP_SIDE) -> Picture:
        """One row per picture: the picture transformed by some of the amounts, each labelled with its amount."""
        if self.strips is None or self.strip_amounts is None:
            raise ValueError("these curves were made without strips")
        count, length = self.strips.shape[:2]
        words = [_amount_words(self.kind, float(a)) for a in self.strip_amounts]
        labels = [f"{self.picture_names[n]}: {w}" if j == 0 else w for n in range(count) for j, w in enumerate(words)]
        return titled(grid(self.strips.flatten(0, 1), columns=length, labels=labels, tile_size=tile_size),
                      f"{self.kind}: the pictures as the model saw them", size=13)

    def picture(self) -> Picture:
        curves = self.curves_picture()
        if self.strips is None:
            return curves
        return stack([self.strip_picture(), curves], direction="vertical", gap=6)

    def curves_picture(self) -> Picture:
        """Feature distance per layer and the class probability, against the amount."""
        layers = list(self.distances)
        figure, axes = new_figure(len(layers) + 1)
        x = self.amounts.tolist()
        for axis, layer in zip(axes[0], layers, strict=False):
            for n, name in enumerate(self.picture_names):
                axis.plot(x, self.distances[layer][n].tolist(), marker=".", label=name)
            axis.set_title(f"{layer}: feature distance")
            axis.set_xlabel(UNITS[self.kind])
            axis.set_ylabel("‖f(x) − f(T x)‖ / ‖f(x)‖")
        axis = axes[0][-1]
        for n, name in enumerate(self.picture_names):
            axis.plot(x, self.probabilities[n].tolist(), marker=".", label=f"{name}: {self.class_names[n]}")
        axis.set_title("probability of the given class" if self.given else "probability of the top class")
        axis.set_xlabel(UNITS[self.kind])
        axis.set_ylim(0, 1)
        axis.legend(fontsize=7)
        figure.suptitle(f"Invariance to {self.kind}")
        figure.tight_layout()
        return figure_to_picture(figure)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def default_layers(model: Model) -> list[str]:
    """The first convolution and the features the classifier reads (Zeiler & Fergus' layers 1 and 7)."""
    net = model.net
    height, width = model.preprocess.input_size
    infos = describe_layers(net, torch.zeros(1, model.preprocess.channels, height, width, device=model.device))
    linears = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    features = linears[-1] if linears else None
    width_in = net.get_submodule(features).in_features if features else None
    penultimate = [i.name for i in infos if i.output_shape == (width_in,) and i.name != features]
    first = conv_layers(net)[:1]
    return first + penultimate[-1:]


def invariance_curves(model: Model | nn.Module, pictures: Sequence[Tensor], kind: str = "translate", *,
                      layers: Sequence[str] | None = None, amounts: Tensor | Sequence[float] | None = None,
                      target: TargetLike = None, names: Sequence[str] | None = None,
                      batch_size: int = 32, strip: int = STRIP_LENGTH) -> InvarianceCurves:
    """Relative feature distance at ``layers`` and class probability, per picture and transform amount.

    Pictures are resized as the model expects, transformed (so translated content comes from
    beyond the crop, as in the paper), then centre-cropped. The class is ``target``'s — one for
    all pictures, or a list with one per picture (their true labels) — by default each picture's
    original top prediction. Distances are ‖f(x) − f(Tx)‖ / ‖f(x)‖. ``strip`` transformed pictures
    per input are kept for the figure (0: none).
    """
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}: use one of {', '.join(TRANSFORMS)}")
    model = as_model(model)
    targets = _per_picture(target, len(pictures))
    layers = [layer_name(model.net, layer) for layer in (layers or default_layers(model))]
    amounts = torch.as_tensor(DEFAULT_AMOUNTS[kind] if amounts is None else amounts, dtype=torch.float32)
    uncropped = Preprocess(model.preprocess.resize, None, model.preprocess.mean, model.preprocess.std,
                           model.preprocess.interpolation, model.preprocess.channels)
    crop = model.preprocess.crop
    distances: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    probabilities, classes, strips, given = [], [], [], []
    shown = torch.linspace(0, len(amounts) - 1, min(strip, len(amounts))).round().long().unique() if strip > 0 \
        else torch.zeros(0, dtype=torch.long)
    with inspection_mode(model.net), capture(model.net, layers, detach=True) as store, torch.no_grad():
        for picture, wanted in zip(pictures, targets, strict=True):
            resized = uncropped.fit(picture).to(model.device)
            variants = transform_batch(resized, kind, torch.cat([torch.tensor([IDENTITY[kind]]), amounts]))[0]
            variants = center_crop(variants, crop) if crop else variants
            if len(shown):
                strips.append(_thumbnails(variants[1:][shown.to(variants.device)]))
            inputs = model.preprocess.normalize(variants)
            outputs: list[Tensor] = []
            features: dict[str, list[Tensor]] = {layer: [] for layer in layers}
            for chunk in inputs.split(batch_size):
                outputs.append(model.net(chunk))
                for layer in layers:
                    features[layer].append(store.activation(layer).flatten(1).float())
            output = torch.cat(outputs)
            goal = as_target(wanted, model)
            stated = None if isinstance(goal, TopClass) else goal.classes(output[:1])
            given.append(stated is not None)
            chosen = stated if stated is not None else output[:1].argmax(1)
            classes.append(int(chosen[0]))
            probabilities.append(output.float().softmax(1)[1:, classes[-1]])
            for layer in layers:
                f = torch.cat(features[layer])
                distances[layer].append((f[1:] - f[:1]).norm(dim=1) / f[0].norm().clamp_min(1e-12))
    names = list(names) if names is not None else [f"image {i}" for i in range(len(pictures))]
    all_names = model.classes()
    return InvarianceCurves(kind, amounts, {k: torch.stack(v).cpu() for k, v in distances.items()},
                            torch.stack(probabilities).cpu(), [all_names[c] for c in classes], names,
                            torch.stack(strips).cpu() if strips else None, amounts[shown] if len(shown) else None,
                            all(given))


def _per_picture(target: TargetLike, count: int) -> list[TargetLike]:
    """One target per picture: a list (or 1-d tensor) gives each picture its own, anything else is shared."""
    if isinstance(target, (list, tuple)) or (isinstance(target, Tensor) and target.dim() == 1):
        if len(target) != count:
            raise ValueError(f"{len(target)} classes for {count} pictures: give one class per picture (their true "
                             "labels), or a single class for all")
        return list(target.tolist()) if isinstance(target, Tensor) else list(target)
    return [target] * count


def _thumbnails(variants: Tensor) -> Tensor:
    """``[S,C,H,W]`` pictures as ``[S,3,side,side]`` thumbnails (grey pictures repeated in colour)."""
    small = torch.nn.functional.interpolate(variants.float(), size=(STRIP_SIDE, STRIP_SIDE), mode="area")
    return small.expand(-1, 3, -1, -1) if small.shape[1] == 1 else small[:, :3]


def _amount_words(kind: str, amount: float) -> str:
    if kind == "translate":
        return f"{amount:+.0f} px"
    if kind == "scale":
        return f"×{amount:.2g}"
    return f"{amount:.0f}°"
