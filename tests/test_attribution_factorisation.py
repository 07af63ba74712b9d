"""Deep feature factorisation: the NMF step for step against scikit-learn's multiplicative updates, the concepts
against pytorch-grad-cam 1.5's DeepFeatureFactorization (scikit-learn's coordinate descent) on EfficientNet-Lite0
and the bundled photos, the reconstruction error on a ReLU CNN, ResNet-18, a ViT's tokens and ConvNeXt."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for

from convscope.attribution.base import forward
from convscope.attribution.factor_figure import concept_labels, factorisation_figure
from convscope.attribution.factorisation import factorise
from convscope.attribution.layers import layer_grid

pytestmark = pytest.mark.usefixtures("one_thread")


def channel_rows(model, layer, x):
    """The layer's activations as DFF reads them: ``C × (B·h·w)``, one row per channel."""
    _, found = forward(model, x, [layer])
    maps = layer_grid(model, layer, found[layer], x).maps(found[layer]).double()
    return maps.transpose(0, 1).reshape(maps.shape[1], -1)


def activation_matrix(model, layer, x):
    """The layer's activations as DFF factorises them: each channel minus its minimum."""
    rows = channel_rows(model, layer, x)
    return rows - rows.amin(1, keepdim=True)


def activation_minima(model, layer, x):
    """Each channel's minimum over the batch's positions, ``[C,1]``: what DFF adds back to a concept's profile."""
    return channel_rows(model, layer, x).amin(1, keepdim=True)


def correlations(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """``[k,k]``: the correlation of each of our rows with each of theirs."""
    a, b = ours - ours.mean(1, keepdim=True), theirs - theirs.mean(1, keepdim=True)
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T


def matching(correlation: torch.Tensor) -> torch.Tensor:
    """Which of their concepts each of ours is (one to one, the most correlated in all)."""
    from scipy.optimize import linear_sum_assignment

    rows, columns = linear_sum_assignment(-correlation.numpy())
    return torch.as_tensor(columns)[torch.as_tensor(rows).argsort()]


@pytest.mark.parametrize("kind", ["relu_cnn", "resnet18", "vit", "convnext"])
def test_the_factors_equal_pytorch_grad_cams_dff(kind):
    # pytorch-grad-cam's dff(): scikit-learn's NMF (coordinate descent, init='random', random_state=0, 200 sweeps at
    # most) on the float32 activations; convscope runs the same solver in float64 from the same seed
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    maker, layer = ARCHITECTURES[kind]
    model, x = maker(), inputs_for(3)
    found = factorise(model, x, layer, 3, steps=200)
    matrix = activation_matrix(model, layer, x).float().numpy()
    nmf = NMF(n_components=3, init="random", random_state=0)
    with warnings.catch_warnings():  # on ViT and ConvNeXt both stop at the 200 sweeps
        warnings.simplefilter("ignore", ConvergenceWarning)
        profiles = torch.from_numpy(nmf.fit_transform(matrix)).double()
    where = torch.from_numpy(nmf.components_).double()
    assert found.steps == nmf.n_iter_
    assert_relative(found.maps.double().transpose(0, 1).reshape(3, -1), where, 1e-4)
    assert_relative(found.concepts.double().T - activation_minima(model, layer, x), profiles, 1e-4)
    theirs = np.linalg.norm(matrix - profiles.numpy() @ nmf.components_) / np.linalg.norm(matrix)
    assert found.error == pytest.approx(theirs, rel=1e-4)
    assert found.maps.shape[:2] == (3, 3) and bool((found.maps >= 0).all())


def test_concepts_equal_pytorch_grad_cams_on_lite0_and_the_photos(lite0):
    from pytorch_grad_cam import DeepFeatureFactorization

    from convscope.images import load_sample

    x = lite0.prepare([load_sample(name) for name in ("chelsea", "coffee", "astronaut")])
    found = factorise(lite0, x, "bn2", 4)
    reference = DeepFeatureFactorization(model=lite0.net, target_layer=lite0.layer("bn2"),
                                         computation_on_concepts=lite0.net.classifier)
    try:
        concepts, maps, outputs = reference(x.clone(), 4)
    finally:
        reference.activations_and_grads.release()
    theirs = torch.from_numpy(np.stack(maps)).transpose(0, 1).reshape(4, -1).double()  # [k, B·H·W], per picture scaled
    ours = found.heat(tuple(x.shape[-2:]), per_picture=True).transpose(0, 1).reshape(4, -1).double()
    match = matching(correlations(ours, theirs))
    assert bool((correlations(ours, theirs)[torch.arange(4), match] > 0.99).all())  # 0.9999 seen: the same concepts
    logits = torch.from_numpy(outputs).double()[match]  # the classifier's logits for the matched embeddings
    assert bool((correlations(found.scores.double(), logits).diagonal() > 0.99).all())
    names = lite0.classes()
    assert {names[i] for i in found.scores.argmax(1).tolist()} >= {"tiger cat", "espresso", "football helmet"}


def test_concept_scores_are_the_embeddings_through_the_classifier_and_the_figure_is_drawn():
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for(2)
    found = factorise(model, x, "features", 3, seed=1)
    with torch.no_grad():
        expected = model.net.fc(found.concepts)
    torch.testing.assert_close(found.scores, expected)
    assert torch.equal(factorise(model, x, "features", 3, seed=1).maps, found.maps)  # seeded
    heat = found.heat((64, 64))
    assert heat.shape == (2, 3, 64, 64) and float(heat.amax()) == 1 and float(heat.amin()) == 0
    assert [float(heat[:, c].amax()) for c in range(3)] == [1.0] * 3  # each concept's brightest place over the batch
    assert factorise(model, x, "features.0", 3).scores is None  # no classifier reads that layer
    figure = factorisation_figure(found, torch.rand(2, 3, 64, 64), ["a", "b"], [str(i) for i in range(10)], tile=64)
    assert figure.size[0] >= 5 * 64 and len(concept_labels(found, [str(i) for i in range(10)])) == 3


def test_factorise_refuses_what_it_cannot_do():
    model = ARCHITECTURES["relu_cnn"][0]()
    with pytest.raises(ValueError, match="ask for at most 16"):
        factorise(model, inputs_for(1), "features", 17)
    with pytest.raises(ValueError, match="concepts must be a positive integer"):
        factorise(model, inputs_for(1), "features", 0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        factorise(model, inputs_for(1), "features", 2, steps=0)


def test_the_factors_command_writes_the_figure(tmp_path, capsys):
    from convscope.cli import main

    main(["factors", "sample:chelsea", "sample:coffee", "--concepts", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "2 concepts at bn2" in out and "tiger cat" in out and "espresso" in out
    assert len(list(tmp_path.glob("factors_bn2_chelsea_coffee_*.png"))) == 1
