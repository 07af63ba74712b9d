"""Top-k predictions with probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.hooks import inspection_mode
from convscope.models.model import Model, as_model
from convscope.render import html
from convscope.render.layout import text_picture
from convscope.render.picture import Picture
from convscope.targets import DETECTION_CLASSES, check_finite_output, class_probabilities, output_kind
from convscope.validation import count


@dataclass
class Predictions:
    """Top-k classes per image: ``indices``/``probabilities`` ``[B,k]`` and the names."""

    indices: Tensor
    probabilities: Tensor
    names: list[list[str]]
    kind: str = "classes"

    def top1(self) -> list[str]:
        """The most probable class name of each image."""
        return [row[0] for row in self.names]

    def lines(self, image: int = 0) -> list[str]:
        """One line per class for image ``image``: probability (the value, for regression), name and index."""
        if self.kind == "regression":
            return [f"{p:+.4g}  {n} ({i})" for i, p, n in zip(self.indices[image].tolist(),
                                                           self.probabilities[image].tolist(), self.names[image],
                                                           strict=True)]
        return [f"{p:6.1%}  {n} ({i})" for i, p, n in zip(self.indices[image].tolist(),
                                                         self.probabilities[image].tolist(), self.names[image],
                                                         strict=True)]

    def picture(self, image: int = 0) -> Picture:
        """The lines of image ``image`` as a picture."""
        return text_picture(self.lines(image))

    def _repr_html_(self) -> str:
        tables = []
        for b in range(len(self.names)):
            values = zip(self.indices[b].tolist(), self.probabilities[b].tolist(), self.names[b], strict=True)
            if self.kind == "regression":
                rows, header = [[i, n, f"{p:+.4g}", ""] for i, p, n in values], "value"
            else:
                rows, header = [[i, n, f"{p:.1%}", html.bar(p)] for i, p, n in values], "probability"
            tables.append(html.table(["output" if self.kind == "regression" else "class", "name", header, ""], rows,
                                     caption=f"image {b}" if len(self.names) > 1 else "", right=(0, 2)))
        return "<div>" + "".join(tables) + "</div>"

    def __repr__(self) -> str:
        return "\n\n".join("\n".join(self.lines(b)) for b in range(len(self.names)))


def predict(model: Model, pictures: Tensor | list[Tensor], k: int = 5, *, batch_size: int = 64) -> Predictions:
    """The ``k`` most probable classes for each picture, read as ``model.output`` says.

    Softmax for classes; ``σ(z)`` and ``σ(-z)`` for a one-logit binary output (classes 1 and 0);
    a sigmoid per class for multi-label (each label's own probability: they need not sum to 1);
    the per-pixel softmax averaged over the picture for segmentation (the share of the picture
    each class takes); the values themselves, largest first, for regression.
    """
    model = as_model(model)
    if model.output == "detection":
        raise ValueError(DETECTION_CLASSES)
    k = count(k, "k", hint="how many classes to list")
    inputs = model.prepare(pictures)
    with inspection_mode(model.net), torch.no_grad():
        logits = torch.cat([model.net(chunk) for chunk in inputs.split(batch_size)])
    check_finite_output(logits, model.name)
    kind = output_kind(logits, model.output)
    readout = class_probabilities(logits, kind)
    classes = model.classes(logits.shape[1])
    k = min(k, readout.shape[1])
    probabilities, indices = readout.topk(k, dim=1)
    names = [[classes[i] for i in row] for row in indices.tolist()]
    return Predictions(indices.cpu(), probabilities.cpu(), names, kind)
