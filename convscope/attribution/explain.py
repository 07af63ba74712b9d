"""From pictures to a rendered explanation: one method (:func:`explain`) or all of them (:func:`compare`)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution, forward
from convscope.attribution.cam import CAM
from convscope.attribution.cam_base import LayerAttribution
from convscope.attribution.layers import last_spatial_layer
from convscope.attribution.occlusion import Occlusion, OcclusionMaps
from convscope.attribution.picture_independence import NOTE, ignores_pictures
from convscope.attribution.registry import METHODS
from convscope.logs import get_logger
from convscope.models.model import Model, as_model
from convscope.render import html
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, stack, text_picture, titled
from convscope.render.overlay import overlay, rgb
from convscope.render.picture import Picture
from convscope.render.scale import colour_bar, wrapped
from convscope.reprs import short_repr
from convscope.suggestions import canonical, unknown
from convscope.targets import Target, TargetLike, as_target, class_probabilities

log = get_logger(__name__)
HEAT_SCALING = {"heat": "abs", "image": "percentile", "saliency": "percentile"}
LAYER_METHODS = tuple(name for name, cls in METHODS.items() if issubclass(cls, LayerAttribution | CAM))


def make_method(name: str | Attribution, model: Model | nn.Module, *, layer: str | nn.Module | None = None,
                strict: bool = True, **options: object) -> Attribution:
    """A method by name (``'grad_cam'``, …) with its ``layer`` and the ``options`` its constructor takes.

    With ``strict``, a layer or option the method does not take is an error; otherwise it is left out.
    """
    return make_method_from(name, model, options, layer=layer, strict=strict)


def make_method_from(name: str | Attribution, model: Model | nn.Module, options: Mapping[str, object], *,
                     layer: str | nn.Module | None = None, strict: bool = True) -> Attribution:
    """:func:`make_method` with the options in one mapping (as a caller that passes them on holds them)."""
    if isinstance(name, Attribution):
        return name
    name = canonical(name, METHODS)
    if name not in METHODS:
        raise unknown("attribution method", name, list(METHODS), hint="the methods are " + ", ".join(METHODS))
    cls = METHODS[name]
    accepted = inspect.signature(cls.__init__).parameters
    given = {k: v for k, v in options.items() if v is not None}
    if layer is not None:
        if "layer" in accepted:
            given["layer"] = layer
        elif strict:
            raise ValueError(f"{name} does not read a layer; a layer applies to " + ", ".join(LAYER_METHODS)
                             + " (and to occlusion's feature map)")
    extra = [k for k in given if k not in accepted]
    if extra and strict:
        takes = [p for p in accepted if p not in ("self", "model")]
        raise ValueError(f"{name} takes no option {', '.join(map(repr, extra))}; it takes {takes or 'none'}")
    return cls(model, **{k: v for k, v in given.items() if k in accepted})


@dataclass
class Explanation:
    """One method's maps for a batch of pictures, with what is needed to show them.

    ``pictures`` ``[B,3,H,W]`` are the images as the model saw them (resized, cropped),
    ``maps`` the method's raw output, ``heat`` ``[B,H,W]`` the non-negative importance at
    the input's size, ``labels`` what was explained in words, per image. ``ignores_pictures``
    is true when the maps would be the same for any other picture (the deconvnet without
    max-pooling); :attr:`note` then says so, and every figure of the explanation carries it.
    """

    __repr__ = short_repr

    method: Attribution
    pictures: Tensor
    maps: Tensor
    heat: Tensor
    labels: list[str]
    layer: str | None = None
    occlusion: OcclusionMaps | None = None
    blank: list[str | None] | None = None  # per image: why its map shows nothing (see blank_map), else None
    ignores_pictures: bool = False

    @property
    def title(self) -> str:
        """The method's name, with the layer where it has one."""
        return self.method.title + (f" at {self.layer}" if self.layer else "")

    @property
    def note(self) -> str | None:
        """What a reader of these maps must know, in one sentence (``None`` when nothing): see ``ignores_pictures``."""
        return f"{self.method.title}: {NOTE}" if self.ignores_pictures else None

    def map_figure(self, index: int = 0) -> Picture:
        """:meth:`map_picture` titled with method, target and layer, with a colour bar of its scale."""
        bar = map_scale_bar(self.method.style, self.maps[index], self.heat[index])
        return self._titled(stack([self.map_picture(index), bar], direction="vertical", gap=4), index)

    def overlay_figure(self, index: int = 0, *, alpha: float = 0.5) -> Picture:
        """:meth:`overlay` titled with method, target and layer, with a colour bar of the heat's scale."""
        bar = heat_scale_bar(HEAT_SCALING[self.method.style], self.heat[index])
        return self._titled(stack([self.overlay(index, alpha=alpha), bar], direction="vertical", gap=4), index)

    def _titled(self, body: Picture, index: int) -> Picture:
        figure = titled(body, self.title, f"for {self.labels[index]}", size=13)
        return stack([figure, wrapped(self.note, body.size[0])], direction="vertical", gap=0) if self.note else figure

    def map_picture(self, index: int = 0) -> Picture:
        """The map alone: a colour gradient image, a grey saliency map, or a heat map."""
        return self._say_blank(Picture(render_map(self.method.style, self.maps[index], self.heat[index])), index)

    def overlay(self, index: int = 0, *, alpha: float = 0.5) -> Picture:
        """The heat laid over the picture (jet colours; bright red = important)."""
        return self._say_blank(Picture(overlay(self.pictures[index], self.heat[index], alpha=alpha,
                                               mode=HEAT_SCALING[self.method.style])), index)

    def _note(self, index: int) -> str | None:
        return self.blank[index] if self.blank is not None else None

    def _say_blank(self, picture: Picture, index: int) -> Picture:
        """A map that shows nothing is titled so (a uniform picture would otherwise pass for a result)."""
        note = self._note(index)
        return titled(picture, note, size=12) if note else picture

    def picture(self, index: int = 0) -> Picture:
        """Picture, map and overlay side by side, titled with the method and what it explains."""
        tiles = torch.stack([rgb(self.pictures[index]).float().cpu(),
                             render_map(self.method.style, self.maps[index], self.heat[index]).cpu(),
                             overlay(self.pictures[index], self.heat[index],
                                     mode=HEAT_SCALING[self.method.style]).cpu()])
        note = self._note(index)
        body = grid(tiles, columns=3, labels=["input", f"{note}" if note else "map", "overlay"], tile_size=224)
        figure = titled(body, f"{self.title}: {self.labels[index]}" + (f" ({note})" if note else ""),
                        self.method.paper)
        return stack([figure, text_picture([self.note + "."], size=12)], direction="vertical",
                     gap=0) if self.note else figure

    def occlusion_picture(self, index: int = 0) -> Picture:
        """The paper's three occlusion maps (only for the occlusion method)."""
        if self.occlusion is None:
            raise ValueError(f"{self.method.title} has no occlusion maps; explain with method='occlusion'")
        from convscope.attribution.feature_projection import occlusion_projection
        from convscope.attribution.figures import occlusion_figure

        model = self.method.model
        projection = occlusion_projection(model, self.pictures, self.occlusion)
        return occlusion_figure(self.occlusion, self.pictures[index], model.classes(), index, projection=projection)

    def pictures_of_all(self) -> Picture:
        """:meth:`picture` of every image, one below the other."""
        return stack([self.picture(i) for i in range(len(self.labels))], direction="vertical", gap=8)

    def _repr_png_(self) -> bytes:
        return self.pictures_of_all()._repr_png_()

    def _repr_html_(self) -> str:
        return "<div>" + "".join(html.image(self.picture(i), f"{self.title}: {self.labels[i]}")
                                 for i in range(len(self.labels))) + "</div>"


def render_map(style: str, maps: Tensor, heat: Tensor) -> Tensor:
    """``[3,H,W]`` in [0, 1] showing one image's map in the way its method's papers do."""
    size = tuple(heat.shape[-2:])
    if style == "image":
        from convscope.render.overlay import upsample

        signed = maps if tuple(maps.shape[-2:]) == size else upsample(maps, size)
        return rgb(normalize(signed.float(), "signed", dims=3))
    if style == "saliency":
        return colorize(normalize(heat, "percentile"), "gray")
    return colorize(normalize(heat, "abs"), "inferno")


def blank_map(maps: Tensor, heat: Tensor, title: str = "the method") -> str | None:
    """Why one image's map shows nothing (``'map is zero everywhere'``, ``'map has no positive value'``), else None.

    NaN or infinity in the map is a ``ValueError``: it cannot be drawn.
    """
    if not bool(torch.isfinite(maps).all()):
        bad = int((~torch.isfinite(maps)).sum())
        raise ValueError(f"{title} gave NaN or infinite map values ({bad} of {maps.numel()}); the model's gradients "
                         "are not finite on this picture: try another method (occlusion needs no gradients)")
    if not bool(maps.any()):
        return "map is zero everywhere"
    if not bool(heat.any()):
        return "map has no positive value"
    return None


def _blank_maps(title: str, maps: Tensor, heat: Tensor, labels: Sequence[str]) -> list[str | None]:
    """:func:`blank_map` per image, each blank one also said on the terminal."""
    notes = [blank_map(maps[b], heat[b], title) for b in range(maps.shape[0])]
    for label, note in zip(labels, notes, strict=True):
        if note:
            log.warning(f"{title} for {label}: the {note} (the target does not change with the picture there, e.g. a "
                        "channel that is zero on it): the figure says so")
    return notes


def _percentile(values: Tensor) -> float:
    flat = values.detach().float().flatten()
    return float(torch.quantile(flat.abs(), 0.995)) if flat.numel() else 0.0


def map_scale_bar(style: str, maps: Tensor, heat: Tensor) -> Picture:
    """The colour bar of :func:`render_map`'s picture of one image's map: colours and the values at their ends."""
    if style == "image":
        top = _percentile(maps)
        return colour_bar(None, f"−{top:.3g}", f"+{top:.3g}", middle="0",
                          what="per channel, clipped at 99.5 % of |v|")
    if style == "saliency":
        return colour_bar("gray", "0", f"{_percentile(heat):.3g}", what="clipped at 99.5 %")
    return colour_bar("inferno", "0", f"{float(heat.abs().max()):.3g}")


def heat_scale_bar(mode: str, heat: Tensor) -> Picture:
    """The colour bar of an overlay of ``heat`` scaled with ``mode`` (``'abs'`` or ``'percentile'``)."""
    top = _percentile(heat) if mode == "percentile" else float(heat.abs().max())
    return colour_bar("jet", "0", f"{top:.3g}", what="clipped at 99.5 %" if mode == "percentile" else "")


def describe_targets(model: Model, target: Target, inputs: Tensor) -> list[str]:
    """What a target means for each image, in words: ``'tabby (17.3%)'``, ``'channel 5 of bn2'``."""
    output, _ = forward(model, inputs, target.layers)
    classes = target.classes(output)
    if classes is None:
        return [_target_words(target)] * inputs.shape[0]
    names = model.classes(output.shape[1])
    readout = class_probabilities(output, getattr(target, "kind", model.output), getattr(target, "region", None))
    probabilities = readout.gather(1, classes.to(output.device).long()[:, None])[:, 0]
    return [f"{names[c]} ({p:.1%})" for c, p in zip(classes.tolist(), probabilities.tolist(), strict=True)]


def _target_words(target: Target) -> str:
    from convscope.targets import Channel, Neuron

    if isinstance(target, Neuron):
        return f"neuron {target.channel} of {target.layer}" + (
            f" at ({target.y}, {target.x})" if target.y is not None else " (centre)")
    if isinstance(target, Channel):
        return f"channel {target.channel} of {target.layer}"
    return "custom target"


def _batch(model: Model, pictures: Tensor | Sequence[Tensor]) -> Tensor:
    if isinstance(pictures, Tensor) and pictures.dim() == 3:
        pictures = [pictures]
    return model.preprocess.fit(list(pictures) if isinstance(pictures, Tensor) else pictures).to(model.device)


def explain(model: Model | nn.Module, pictures: Tensor | Sequence[Tensor], method: str | Attribution = "grad_cam",
            target: TargetLike = None, *, layer: str | nn.Module | None = None, **options: object) -> Explanation:
    """Explain ``pictures`` (``[3,H,W]`` in [0, 1], a list, or a batch) with one method.

    ``method`` is a name from :data:`convscope.attribution.METHODS` or a method object;
    ``options`` go to its constructor (``steps=``, ``samples=``, ``size=``, ``batch_size=`` …).
    ``layer`` is the layer of CAM-type methods; for occlusion, the layer whose strongest
    feature map is followed (default: the last feature map).
    """
    model = as_model(model)
    occluding = method == "occlusion" or isinstance(method, Occlusion)
    chosen = make_method_from(method, model, options, layer=None if occluding else layer)
    fitted = _batch(model, pictures)
    inputs = model.preprocess.normalize(fitted).to(model.dtype)
    goal = as_target(target, model)
    found = None
    if isinstance(chosen, Occlusion):  # one run gives the pixel map and the paper's three maps
        feature_layer = layer if layer is not None else last_spatial_layer(model, inputs)
        found = chosen.maps(inputs, goal, layer=feature_layer)
        maps = found.to_pixels(found.drop)
    else:
        maps = chosen(inputs, goal)
    heat = chosen.heat(maps, tuple(inputs.shape[-2:]))
    used = chosen.layer(inputs) if isinstance(chosen, LayerAttribution) else (
        chosen.head(inputs).layer if isinstance(chosen, CAM) else None)
    labels = describe_targets(model, goal, inputs)
    title = chosen.title + (f" at {used}" if used else "")
    return Explanation(chosen, fitted, maps, heat, labels, used, found, _blank_maps(title, maps, heat, labels),
                       ignores_pictures=ignores_pictures(chosen, inputs, goal, maps))


def compare(model: Model | nn.Module, pictures: Tensor | Sequence[Tensor], methods: Sequence[str] | None = None,
            target: TargetLike = None, *, layer: str | nn.Module | None = None, tile_size: int = 160,
            names: Sequence[str] | None = None, options: Mapping[str, Mapping[str, object]] | None = None) -> Picture:
    """Every method (or ``methods``) side by side, one row per picture: the seeds' comparison figure.

    ``options`` maps a method name to its constructor options. A method that cannot
    explain this model (CAM without global average pooling, guided backprop on SiLU…)
    gets an empty tile and its reason under the figure.
    """
    model = as_model(model)
    methods = list(methods or METHODS)
    fitted = _batch(model, pictures)
    inputs = model.preprocess.normalize(fitted).to(model.dtype)
    goal = as_target(target, model)
    labels = describe_targets(model, goal, inputs)
    batch, size = inputs.shape[0], tuple(inputs.shape[-2:])
    columns: list[Tensor] = [rgb(fitted).float()]
    headers = ["input"]
    notes = []
    blank: list[list[str | None]] = [[None] * batch]  # per column, per image: why the map shows nothing
    for name in methods:
        chosen = make_method_from(name, model, (options or {}).get(name, {}), layer=layer, strict=False)
        try:
            maps = chosen(inputs, goal)
        except ValueError as error:
            notes.append(f"{chosen.title}: {error}")
            log.warning(f"left out {chosen.title}: {error}")  # on the terminal too, not only under the figure
            columns.append(torch.ones_like(columns[0]))
            headers.append(f"{chosen.title}: n/a")
            blank.append([None] * batch)
            continue
        if ignores_pictures(chosen, inputs, goal, maps):
            notes.append(f"{chosen.title}: {NOTE}.")
            log.warning(f"{chosen.title}: {NOTE}")
            headers.append(f"{chosen.title}: fixed pattern")
        else:
            headers.append(chosen.title)
        heat = chosen.heat(maps, size)
        blank.append(_blank_maps(chosen.title, maps, heat, labels))
        notes.extend(f"{chosen.title}: {note} for image {b} ({labels[b]})" for b, note in enumerate(blank[-1]) if note)
        shown = [overlay(fitted[b], heat[b], mode=HEAT_SCALING[chosen.style]) if chosen.style == "heat"
                 else render_map(chosen.style, maps[b], heat[b]) for b in range(batch)]
        columns.append(torch.stack(shown).float())
    tiles = torch.stack(columns, 1).flatten(0, 1).cpu()
    row_names = list(names) if names is not None else [f"image {b}" for b in range(batch)]
    tile_labels = [f"{row_names[b]}: {labels[b]}" if c == 0 else
                   headers[c] + (f": {blank[c][b]}" if blank[c][b] else "")
                   for b in range(batch) for c in range(len(columns))]
    body = grid(tiles, columns=len(columns), labels=tile_labels, tile_size=tile_size)
    subtitle = ("Heat maps are overlaid (red = important); gradient methods are shown as images "
                "(grey = 0, colours = signed gradient); saliency is white where the gradient is large.")
    figure = titled(body, f"Attribution methods on {model.name}", subtitle)
    if notes:
        figure = stack([figure, text_picture(notes, size=11)], direction="vertical", gap=4)
    return figure
