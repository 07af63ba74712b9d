"""Feature inversion (Mahendran & Vedaldi, CVPR 2015, https://arxiv.org/abs/1412.0035).

For each chosen layer, find the picture x whose features Φ(x) match the photo's Φ₀:
argmin ‖Φ(x) − Φ₀‖²/‖Φ₀‖² + λ·TV^β(x), starting from noise. All layers are inverted
together, one batch item per layer, in one run of the loop. Deeper layers keep less of
the photo, so their reconstructions are blurrier and more abstract.

The default parameterisation is a decorrelated Fourier image; the paper's free pixels
are one argument away (``parameterisation='pixels'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.models.model import Model, as_model
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.loop import optimise
from convscope.synthesis.matching import feature_distance, layer_features, normalised_distance
from convscope.synthesis.objectives import Objective
from convscope.synthesis.params import ImageParam, fourier, pixels
from convscope.synthesis.regularisers import total_variation
from convscope.synthesis.texture import _picture


@dataclass
class InversionResult:
    """``images[i]`` ``[3,H,W]`` reconstructs ``original`` from ``layers[i]``.

    ``feature_errors[i]`` is the final normalised Euclidean loss at that layer,
    ``pixel_errors[i]`` the root-mean-square difference from the original in [0, 1] units.
    """

    __repr__ = short_repr

    original: Tensor
    layers: list[str]
    images: Tensor
    feature_errors: Tensor
    pixel_errors: Tensor
    losses: Tensor
    settings: dict

    def lines(self) -> list[str]:
        """One line per layer: feature error and pixel RMSE of its reconstruction."""
        return [f"{layer}: feature error {float(f):.4f}, pixel RMSE {float(p):.4f}"
                for layer, f, p in zip(self.layers, self.feature_errors, self.pixel_errors, strict=True)]

    def picture(self, tile_size: int = 160) -> Picture:
        """The original next to each layer's reconstruction, shallow to deep."""
        tiles = torch.cat([self.original[None].expand(-1, 3, -1, -1), self.images])  # a grey original as RGB
        labels = ["original"] + [f"{layer}  err {float(f):.3f}" for layer, f in
                                 zip(self.layers, self.feature_errors, strict=True)]
        body = grid(tiles, labels=labels, tile_size=tile_size, columns=len(tiles))
        return titled(body, "Feature inversion, shallow → deep",
                      f"normalised Euclidean loss + {self.settings['tv_weight']:g}·TV^{self.settings['beta']:g}, "
                      f"{self.settings['steps']} steps, {self.settings['parameterisation']} parameterisation")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def invert(model: Model | nn.Module, picture: Tensor, layers: Sequence[str], *, size: int | None = None,
           steps: int = 400, lr: float = 0.05, tv_weight: float = 0.05, beta: float = 2.0, optimizer: str = "adam",
           start_sd: float = 0.01, parameterisation: str = "fourier", generator: torch.Generator | None = None,
           progress: bool = True) -> InversionResult:
    """Reconstruct ``picture`` (``[3,H,W]`` in [0, 1]) from its features at each of ``layers``.

    The picture is first resized and centre-cropped as the model expects (to ``size`` when
    given). ``tv_weight`` is λ for the TV^``beta`` regulariser (relative to the normalised
    feature loss, which starts near 1); the search starts from grey plus noise of ``start_sd``.
    ``parameterisation`` is ``fourier`` (default: a decorrelated Fourier image, whose steps do
    not favour the high-frequency patterns that strided layers cannot see — on
    EfficientNet-Lite the deep reconstructions are otherwise covered in colour noise) or
    ``pixels`` (the paper's free pixels).
    """
    model = as_model(model)
    layers = list(layers)
    if not layers:
        raise ValueError("give at least one layer to invert, e.g. layers=['blocks.1', 'blocks.3']")
    for layer in layers:
        model.layer(layer)
    photo = _picture(picture)
    fitted = _fit(model, photo, size)
    references = layer_features(model, fitted, layers)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    objective: Objective = -tv_weight * total_variation(beta)
    for index, layer in enumerate(layers):
        objective = objective - feature_distance(layer, references[layer][0]).on(index)
    side = (fitted.shape[-2], fitted.shape[-1])
    param: ImageParam
    if parameterisation == "pixels":
        param = pixels(side, len(layers), sd=start_sd, generator=generator)
    elif parameterisation == "fourier":
        param = fourier(side, len(layers), sd=start_sd, generator=generator)
    else:
        raise ValueError(f"parameterisation is 'pixels' or 'fourier', got {parameterisation!r}")
    result = optimise(model, objective, param, steps=steps,
                      lr=lr, optimizer=optimizer, generator=generator, progress=progress, description="inversion")
    final = layer_features(model, result.images, layers)
    errors = torch.cat([normalised_distance(final[layer][i:i + 1], references[layer])
                        for i, layer in enumerate(layers)]).cpu()
    rmse = (result.images - fitted.cpu()).pow(2).flatten(1).mean(1).sqrt()
    settings = {"steps": steps, "lr": lr, "tv_weight": tv_weight, "beta": beta, "optimizer": optimizer, "size": side,
                "parameterisation": parameterisation}
    return InversionResult(fitted[0].cpu(), layers, result.images, errors, rmse, result.losses, settings)


def _fit(model: Model, photo: Tensor, size: int | None) -> Tensor:
    if size is None:
        return model.preprocess.fit([photo]).to(model.device)
    from convscope.models.preprocessing import Preprocess

    preprocess = Preprocess(resize=size, crop=size, mean=model.preprocess.mean, std=model.preprocess.std,
                            interpolation=model.preprocess.interpolation, channels=3)
    return preprocess.fit([photo]).to(model.device)
