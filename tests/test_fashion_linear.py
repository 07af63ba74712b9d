"""Fooling is not only deep: the shipped softmax-regression model on Fashion-MNIST loads by name, is accurate,
and falls to the same attacks as the CNN (Goodfellow et al. 2015's linear explanation)."""

from __future__ import annotations

import pytest
import torch

from convscope.data import FashionMNIST, has_fashion_mnist
from convscope.models import load_model
from convscope.models.fashion_linear import SoftmaxRegression, fashion_linear_model
from convscope.synthesis import fgsm

needs_fashion = pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed")


def test_it_loads_by_name_as_one_linear_layer():
    model = load_model("fashion_linear", device="cpu")
    assert isinstance(model.net, SoftmaxRegression) and model.name == "fashion_linear"
    assert [name for name, _ in model.net.named_parameters()] == ["classifier.weight", "classifier.bias"]
    inputs = model.preprocess(torch.rand(2, 1, 28, 28))
    expected = inputs.flatten(1) @ model.net.classifier.weight.T + model.net.classifier.bias
    torch.testing.assert_close(model.net(inputs), expected)


def test_weights_of_another_shape_are_refused_in_one_line():
    with pytest.raises(ValueError, match="do not fit fashion_linear"):
        fashion_linear_model({"classifier.weight": torch.zeros(10, 100), "classifier.bias": torch.zeros(10)})


@needs_fashion
def test_it_is_accurate_and_fgsm_fools_it():
    model = load_model("fashion_linear", device="cpu")
    images, labels = FashionMNIST(split="test").tensors()
    images, labels = images[:400], labels[:400]
    with torch.no_grad():
        clean = (model.net(model.preprocess(images)).argmax(1) == labels).float().mean()
    assert clean > 0.8
    fooled = (fgsm(model, list(images), 0.1, labels=labels.tolist()).predictions == labels).float().mean()
    assert fooled < 0.2 < clean - 0.5
