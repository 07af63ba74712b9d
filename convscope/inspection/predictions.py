"""Top-k predictions with probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.hooks import inspection_mode
from convscope.models.model import Model, as_model
from convscope.render.layout import text_picture
from convscope.render.picture import Picture
from convscope.validation import count


@dataclass
class Predictions:
    """Top-k classes per image: ``indices``/``probabilities`` ``[B,k]`` and the names."""

    indices: Tensor
    probabilities: Tensor
    names: list[list[str]]

    def top1(self) -> list[str]:
        return [row[0] for row in self.names]

    def lines(self, image: int = 0) -> list[str]:
        return [f"{p:6.1%}  {n} ({i})" for i, p, n in zip(self.indices[image].tolist(),
                                                         self.probabilities[image].tolist(), self.names[image],
                                                         strict=True)]

    def picture(self, image: int = 0) -> Picture:
        return text_picture(self.lines(image))

    def __repr__(self) -> str:
        return "\n\n".join("\n".join(self.lines(b)) for b in range(len(self.names)))


def predict(model: Model, pictures: Tensor | list[Tensor], k: int = 5, *, batch_size: int = 64) -> Predictions:
    """The ``k`` most probable classes (softmax of the output) for each picture."""
    model = as_model(model)
    k = count(k, "k", hint="how many classes to list")
    inputs = model.prepare(pictures)
    with inspection_mode(model.net), torch.no_grad():
        logits = torch.cat([model.net(chunk) for chunk in inputs.split(batch_size)])
    classes = model.classes(logits.shape[1])
    k = min(k, logits.shape[1])
    probabilities, indices = logits.float().softmax(1).topk(k, dim=1)
    names = [[classes[i] for i in row] for row in indices.tolist()]
    return Predictions(indices.cpu(), probabilities.cpu(), names)
