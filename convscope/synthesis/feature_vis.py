"""Feature visualisation: the picture that most excites one channel or one neuron of any layer
(Erhan et al., 2009; Olah, Mordvintsev & Schubert, 2017, https://distill.pub/2017/feature-visualization/).

A decorrelated Fourier parameterisation and random jitter, scaling and rotation keep
the pictures free of high-frequency noise; several channels are optimised in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.models.model import Model, as_model
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.loop import optimise
from convscope.synthesis.matching import layer_features
from convscope.synthesis.objectives import channel, neuron
from convscope.synthesis.params import ImageParam, fourier, pixels
from convscope.synthesis.sizes import fixed_input_size, layer_shape
from convscope.synthesis.transforms import standard

KINDS = ("channel", "neuron")


@dataclass
class FeatureResult:
    """``images[i]`` ``[3,H,W]`` maximises ``channels[i]`` of ``layer`` (its mean, or the centre neuron);
    ``activations[i]`` is that value on the final picture."""

    __repr__ = short_repr

    layer: str
    kind: str
    channels: list[int]
    images: Tensor
    activations: Tensor
    losses: Tensor
    settings: dict

    def picture(self, tile_size: int = 160, columns: int | None = None) -> Picture:
        """The visualisations side by side, labelled with channel and final activation."""
        labels = [f"#{c}  {float(a):.2f}" for c, a in zip(self.channels, self.activations, strict=True)]
        body = grid(self.images, labels=labels, tile_size=tile_size, columns=columns)
        what = "channel mean" if self.kind == "channel" else "centre neuron"
        return titled(body, f"Feature visualisation: {self.layer} ({what})",
                      f"{self.settings['steps']} steps, {self.settings['size']} px, "
                      f"{self.settings['parameterisation']} parameterisation; numbers: the final activation")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def visualise_features(model: Model | nn.Module, layer: str, channels: int | Sequence[int], *,
                       kind: str = "channel", size: int = 128, steps: int = 256, lr: float = 0.05,
                       parameterisation: str = "fourier", generator: torch.Generator | None = None,
                       progress: bool = True) -> FeatureResult:
    """Pictures that maximise each of ``channels`` of ``layer`` — the mean over positions
    (``kind='channel'``) or the neuron at the centre (``kind='neuron'``)."""
    model = as_model(model)
    model.layer(layer)
    if kind not in KINDS:
        raise ValueError(f"kind is one of {KINDS}, got {kind!r}")
    indices = [channels] if isinstance(channels, int) else list(channels)
    if not indices:
        raise ValueError("give at least one channel")
    model_size = fixed_input_size(model, layer)  # a flatten before the layer: the pictures are resized to it
    shape = layer_shape(model, layer, model_size or (size, size))
    if kind == "neuron" and len(shape) == 1:
        raise ValueError(f"layer {layer!r} gives a vector ({shape[0]} values, no positions): its neuron is the "
                         "channel itself; use kind 'channel' (--kind channel), or a layer with feature maps")
    if max(indices) >= shape[0]:
        raise ValueError(f"channel {max(indices)} is out of range: layer {layer!r} has channels 0 … {shape[0] - 1}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    unit = channel if kind == "channel" else neuron
    terms = [unit(layer, c).on(i) if len(indices) > 1 else unit(layer, c) for i, c in enumerate(indices)]
    objective = terms[0]
    for term in terms[1:]:
        objective = objective + term
    param: ImageParam
    if parameterisation == "fourier":
        param = fourier(size, len(indices), generator=generator)
    elif parameterisation == "pixels":
        param = pixels(size, len(indices), generator=generator)
    else:
        raise ValueError(f"parameterisation is 'fourier' or 'pixels', got {parameterisation!r}")
    result = optimise(model, objective, param, steps=steps, lr=lr, transforms=standard(size / 128),
                      generator=generator, progress=progress, description=f"features {layer}", model_size=model_size)
    shown = result.images if model_size is None else F.interpolate(result.images, size=model_size, mode="bilinear",
                                                                    align_corners=False)
    acts = layer_features(model, shown, [layer])[layer]
    if acts.dim() == 2:
        acts = acts[:, :, None, None]
    rows = torch.arange(len(indices))
    cols = torch.tensor(indices)
    if kind == "channel":
        values = acts.flatten(2).mean(2)[rows, cols]
    else:
        values = acts[rows, cols, acts.shape[2] // 2, acts.shape[3] // 2]
    settings = {"size": size, "steps": steps, "lr": lr, "parameterisation": parameterisation}
    return FeatureResult(layer, kind, indices, result.images, values.cpu(), result.losses, settings)

