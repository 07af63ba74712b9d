"""Class model visualisation (Simonyan, Vedaldi & Zisserman, 2014, https://arxiv.org/abs/1312.6034).

arg max_I S_c(I) − λ‖I‖²: the picture the model finds most typical of class c.
``objective='score'`` is exactly that. The default, ``'score+log_probability'``, adds
log p_c = S_c − log Σ_j exp S_j: S_c alone raises a class and its neighbours together
(tabby and tiger cat: p(tabby) stays near 0.8), while log p_c alone stops pulling once
the class wins and lets the regularisers fade the picture; the sum keeps the class's
own evidence growing and pushes the neighbours down. Plain gradient ascent gives
high-frequency patterns; the recipes add the seeds' tricks:

- ``'fourier'`` (default): the objective minus λ‖I‖² on a decorrelated Fourier
  parameterisation (Olah et al., 2017) with random jitter/scale/rotation — on
  EfficientNet-Lite the most recognisable pictures, in natural colours;
- ``'simonyan'``: free pixels as in the paper, with the tricks of the seeds — a Gaussian
  blur every few steps and clipping of pixels with a small norm (Yosinski et al., 2015,
  https://arxiv.org/abs/1506.06579) — the same transforms, grown over three octaves
  (from half size up) so that large structures form first. Its pictures have the paper's
  look, not a photo's: saturated, high-frequency colour patterns over the whole square, in
  which the class's parts (pineapple skin and leaves, a fish body, cat stripes) show only on a
  close look, while the model is sure of the class (at the defaults p = 0.985 tabby, 1.000
  goldfish, 0.9997 flamingo, 1.000 pineapple; docs/synthesis.md). The paper's figure 1 is
  like this except for its grey background. Use ``'fourier'`` for recognisable pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.models.model import Model, as_model
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.loop import evaluate, optimise
from convscope.synthesis.objectives import class_log_probability, class_score
from convscope.synthesis.params import fourier, from_image, pixels
from convscope.synthesis.regularisers import Blur, ClipNorm, l2
from convscope.synthesis.sizes import fixed_input_size
from convscope.synthesis.transforms import strong
from convscope.validation import picture_side

RECIPES = ("simonyan", "fourier")
OBJECTIVES = ("score+log_probability", "score", "log_probability")
DEFAULT_SIZE = 160
OCTAVES = (0.5, 0.75, 1.0)
OCTAVE_SHARE = (0.25, 0.3, 0.45)


_FORMULA = {"score": "S_c(I)", "log_probability": "log p_c(I)", "score+log_probability": "S_c(I) + log p_c(I)"}


@dataclass
class ClassModelResult:
    """``images`` ``[B,3,H,W]``, one per class in ``classes``; ``probabilities`` the model's final
    softmax probability of each target class on its picture (no transforms)."""

    __repr__ = short_repr

    images: Tensor
    classes: list[int]
    names: list[str]
    probabilities: Tensor
    losses: Tensor
    recipe: str
    settings: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per class with its final probability."""
        return [f"{name} ({index}): p = {float(p):.4f}" for name, index, p in
                zip(self.names, self.classes, self.probabilities, strict=True)]

    def picture(self, tile_size: int = 224, columns: int | None = None) -> Picture:
        """The class models side by side, labelled with their probabilities, titled with the settings."""
        labels = [f"{name.split(',')[0]}  p={float(p):.3f}" for name, p in
                  zip(self.names, self.probabilities, strict=True)]
        body = grid(self.images, labels=labels, tile_size=tile_size, columns=columns)
        s = self.settings
        return titled(body, f"Class models ({self.recipe})",
                      f"{s['steps']} steps at {s['size']} px, arg max {_FORMULA[s['objective']]} − {s['l2']:g}‖I‖²")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def class_model(model: Model | nn.Module, target: int | str | Sequence[int | str], *, size: int | None = None,
                recipe: str = "fourier", objective: str = "score+log_probability", steps: int = 256,
                lr: float | None = None, l2_weight: float = 3e-5,
                blur: float = 1.0, blur_every: int = 4, clip_percentile: float = 5.0,
                generator: torch.Generator | None = None, progress: bool = True) -> ClassModelResult:
    """Class model pictures for ``target`` (a class index or name, or one per picture).

    ``objective`` is ``score+log_probability`` (default), ``score`` (Simonyan et al.'s S_c)
    or ``log_probability``; ``size`` defaults to 160 px (at the 224 px input size the
    objects fill less of the picture); ``steps`` is the total over the octaves;
    ``l2_weight`` is λ (on the image in the model's input units); ``blur``/``blur_every``
    and ``clip_percentile`` are the pixel tricks of the ``simonyan`` recipe (blur and
    clipping act on pixels, so the Fourier recipe has none).
    """
    model = as_model(model)
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; use one of {RECIPES}")
    items = [target] if isinstance(target, int | str) else list(target)
    if not items:
        raise ValueError("give at least one class")
    classes = [model.class_index(item) for item in items]
    names = [model.classes()[c] for c in classes]
    size = DEFAULT_SIZE if size is None else picture_side(size)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use one of {OBJECTIVES}")
    goal = {"score": class_score(classes), "log_probability": class_log_probability(classes),
            "score+log_probability": class_score(classes) + class_log_probability(classes)}[objective]
    objective_value = goal - l2_weight * l2()
    transforms = strong(size / 160)
    batch = len(classes)
    model_size = fixed_input_size(model)  # a model that reads one size only sees the picture resized to it
    if recipe == "fourier":
        lr = lr or 0.05
        result = optimise(model, objective_value, fourier(size, batch, generator=generator), steps=steps, lr=lr,
                          transforms=transforms, generator=generator, progress=progress, description="class model",
                          model_size=model_size)
        losses = result.losses
    else:
        lr = lr or 0.05
        rules = [Blur(blur, blur_every)] + ([ClipNorm(clip_percentile)] if clip_percentile > 0 else [])
        images = pixels(max(8, round(size * OCTAVES[0])), batch, generator=generator)()
        parts: list[Tensor] = []
        for number, (scale, share) in enumerate(zip(OCTAVES, OCTAVE_SHARE, strict=True)):
            side = max(8, round(size * scale))
            start = F.interpolate(images.detach(), size=(side, side), mode="bilinear", align_corners=False)
            count = max(1, round(steps * share)) if number < len(OCTAVES) - 1 else max(1, steps - sum(
                len(p) for p in parts))
            result = optimise(model, objective_value, from_image(start), steps=count, lr=lr,
                              transforms=strong(side / 160), step_rules=rules, generator=generator, progress=progress,
                              description=f"class model octave {number + 1}/{len(OCTAVES)}", model_size=model_size)
            images = result.images
            parts.append(result.losses)
        losses = torch.cat(parts)
    final = evaluate(model, result.images, model_size).softmax(1).cpu()
    probabilities = final[torch.arange(batch), torch.tensor(classes)]
    settings = {"size": size, "steps": steps, "lr": lr, "l2": l2_weight, "objective": objective, "blur": blur,
                "blur_every": blur_every, "clip_percentile": clip_percentile}
    return ClassModelResult(result.images, classes, names, probabilities, losses, recipe, settings)
