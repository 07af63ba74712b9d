"""Softmax regression on Fashion-MNIST: a model with no hidden layer, to fool beside the CNN.

Szegedy et al. (2014, https://arxiv.org/abs/1312.6199) found adversarial examples in deep networks;
Goodfellow et al. (2015, https://arxiv.org/abs/1412.6572) showed they are a property of *linear*
behaviour in high dimensions: a change of ε per pixel along sign(w) moves a linear score by ε‖w‖₁,
which grows with the number of pixels. This model makes that visible: ``convscope fool --model
fashion_linear`` attacks it exactly as it attacks the CNN, and its class templates (the rows of the
weight matrix) are the pictures an FGSM step adds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from convscope.data.fashion_mnist import FASHION_CLASSES
from convscope.models.fashion import FASHION_PREPROCESS
from convscope.models.model import Model

LINEAR_MODEL = "fashion_linear"
LINEAR_WEIGHTS = Path(__file__).parent / "weights" / "fashion_linear.pt"


class SoftmaxRegression(nn.Module):
    """``[B,1,28,28]`` → class scores ``[B,10]`` = W·x + b (the softmax is the loss's, not the model's)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(28 * 28, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(x))


def fashion_linear_model(state_dict: dict[str, Tensor] | None = None) -> Model:
    """Softmax regression with ``state_dict``, or the shipped weights (trained by :func:`train_linear`)."""
    if state_dict is None:
        if not LINEAR_WEIGHTS.is_file():
            raise ValueError(f"the trained {LINEAR_MODEL} weights are missing ({LINEAR_WEIGHTS}); make them with "
                             "convscope.models.fashion_linear.train_linear()")
        from convscope.models.loading import read_state_dict

        state_dict = read_state_dict(LINEAR_WEIGHTS)
    net = SoftmaxRegression()
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as error:
        first = " ".join(str(error).splitlines()[:2])
        raise ValueError(f"these weights do not fit {LINEAR_MODEL} (784 → 10 linear): {first}") from error
    return Model(net.eval(), preprocess=FASHION_PREPROCESS, class_names=list(FASHION_CLASSES), name=LINEAR_MODEL)


def train_linear(epochs: int = 20, weight_decay: float = 1e-4, seed: int = 0,
                 root: str | Path | None = None) -> tuple[dict[str, Tensor], float]:
    """Fit softmax regression on the 60 000 Fashion-MNIST training pictures; returns the state dict and the
    test accuracy. Full-batch L-BFGS on the cross-entropy plus ``weight_decay``·‖W‖² (deterministic)."""
    from convscope.data.fashion_mnist import FashionMNIST

    generator = torch.Generator().manual_seed(seed)
    net = SoftmaxRegression()
    with torch.no_grad():
        net.classifier.weight.copy_(torch.randn(net.classifier.weight.shape, generator=generator) * 0.01)
        net.classifier.bias.zero_()
    prepare = FASHION_PREPROCESS.normalize
    images, labels = FashionMNIST(root, split="train").tensors()
    inputs = prepare(images)
    optimiser = torch.optim.LBFGS(net.parameters(), max_iter=epochs * 10, history_size=20,
                                  line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        optimiser.zero_grad()
        value = nn.functional.cross_entropy(net(inputs), labels) + weight_decay * net.classifier.weight.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    test_images, test_labels = FashionMNIST(root, split="test").tensors()
    with torch.no_grad():
        accuracy = float((net(prepare(test_images)).argmax(1) == test_labels).float().mean())
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, accuracy
