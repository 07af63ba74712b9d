"""KPCA-CAM, Shapley-CAM and Finer-CAM against pytorch-grad-cam 1.5 on a ReLU CNN, ResNet-18, a ViT's patch tokens
and ConvNeXt (random weights), comparing raw maps (before its ReLU, scaling and resizing) where it makes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for, vit_tokens_to_grid
from torch.nn.attention import SDPBackend, sdpa_kernel

from convscope import ClassProbability
from convscope.attribution import METHODS
from convscope.attribution.eigen import first_component
from convscope.attribution.kpca_cam import KERNELS, kernel_component

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = [3, 7]


@pytest.fixture(scope="module", params=["relu_cnn", "resnet18", "vit", "convnext"])
def architecture(request):
    maker, layer = ARCHITECTURES[request.param]
    return request.param, maker(), layer


def reference_raw(make, model, layer: str, x: torch.Tensor, kind: str, **call) -> torch.Tensor:
    """pytorch-grad-cam's map ``[B,1,h,w]`` before its ReLU and scaling, from ``make(model=, target_layers=, …)``."""
    cam = make(model=model.net, target_layers=[model.layer(layer)],
               reshape_transform=vit_tokens_to_grid if kind == "vit" else None)
    inner = getattr(cam, "base_cam", cam)  # FinerCAM wraps a Grad-CAM
    seen, made = [], inner.get_cam_image
    inner.get_cam_image = lambda *args, **kwargs: seen.append(made(*args, **kwargs)) or seen[-1]
    try:
        with sdpa_kernel([SDPBackend.MATH]):  # Shapley-CAM's second backward needs the plain attention
            cam(input_tensor=x.clone(), **call)
    finally:  # not `with cam:`: its release detaches the ViT's gradients in place, which raises
        for handle in inner.activations_and_grads.handles:
            handle.remove()
        inner.activations_and_grads.handles.clear()
        inner.activations_and_grads.gradients, inner.activations_and_grads.activations = [], []
    raw = seen[0].detach().numpy() if isinstance(seen[0], torch.Tensor) else np.asarray(seen[0])
    return torch.from_numpy(raw)[:, None]


def same_sign(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    agree = (ours.double() * theirs.double()).flatten(1).sum(1)
    return theirs * torch.where(agree < 0, -1.0, 1.0).view(-1, 1, 1, 1)


def targets(kind=None):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

    return [(ClassifierOutputSoftmaxTarget if kind == "softmax" else ClassifierOutputTarget)(c) for c in CLASSES]


# KPCA-CAM

def test_kpca_cam_equals_pytorch_grad_cam(architecture):
    from pytorch_grad_cam import KPCA_CAM

    kind, model, layer = architecture
    x = inputs_for()
    ours = METHODS["kpca_cam"](model, layer)(x, CLASSES)
    theirs = reference_raw(KPCA_CAM, model, layer, x, kind, targets=targets())
    # scikit-learn's KernelPCA runs in float32 on pytorch-grad-cam's float32 activations, convscope in float64:
    # ≤ 1.2e-5 on ConvNeXt; fed float64 activations, the reference agrees to 1e-7 (the next test).
    assert_relative(ours, same_sign(ours, theirs), 2e-5 if kind == "convnext" else 1e-5)
    (maps,) = METHODS["kpca_cam"](model, layer).feature_maps(x, _activations(model, layer, x))
    assert not torch.allclose(ours, first_component(maps))  # the sigmoid kernel is not plain PCA


def _activations(model, layer, x):
    from convscope.attribution.base import forward

    return forward(model, x, [layer])[1][layer].float()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("gamma", [None, 0.3])
def test_kernel_component_equals_scikit_learns_kernel_pca_in_float64(kernel, gamma):
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_kernel

    maps = torch.randn(3, 16, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).relu()
    ours = kernel_component(maps, kernel, gamma)
    theirs = torch.from_numpy(get_2d_projection_kernel(maps.numpy(), kernel, gamma).astype(np.float64))[:, None]
    assert_relative(ours, same_sign(ours, theirs), 1e-6)  # its float64 result, returned as float32


def test_kpca_with_the_linear_kernel_is_eigen_cam_and_the_sign_follows_the_channel_sum():
    maps = torch.randn(2, 6, 5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert_relative(kernel_component(maps, "linear"), first_component(maps), 1e-10)
    ours = kernel_component(maps)
    centred = maps.sum(1) - maps.sum(1).mean((1, 2), keepdim=True)
    assert ((ours[:, 0] * centred).sum((1, 2)) >= 0).all()
    assert torch.equal(kernel_component(torch.zeros(1, 3, 2, 2)), torch.zeros(1, 1, 2, 2))


def test_kpca_cam_checks_its_settings():
    model = ARCHITECTURES["relu_cnn"][0]()
    with pytest.raises(ValueError, match="kernel must be one of sigmoid"):
        METHODS["kpca_cam"](model, kernel="laplacian")
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        METHODS["kpca_cam"](model, gamma=0)


# Shapley-CAM

class ShapleyCAMOnTokens:
    """pytorch-grad-cam's ShapleyCAM with its reshape applied to the activations it sums: as published, its
    get_cam_image receives the ViT's tokens [B,N,C] unreshaped and raises 'Invalid activation shape. Get 3.'."""

    def __new__(cls, **kwargs):
        from pytorch_grad_cam import ShapleyCAM

        class Fixed(ShapleyCAM):
            def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
                weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
                return (weights[:, :, None, None] * self.reshape_transform(activations).detach().numpy()).sum(1)

        return Fixed(**kwargs)


@pytest.mark.parametrize("score", ["logit", "softmax"])
def test_shapley_cam_equals_pytorch_grad_cam(architecture, score):
    from pytorch_grad_cam import ShapleyCAM

    kind, model, layer = architecture
    x = inputs_for()
    target = ClassProbability(tuple(CLASSES)) if score == "softmax" else CLASSES
    ours = METHODS["shapley_cam"](model, layer)(x, target)
    theirs = reference_raw(ShapleyCAMOnTokens if kind == "vit" else ShapleyCAM, model, layer, x, kind,
                           targets=targets(score))
    assert_relative(ours, theirs)
    grad_cam = METHODS["grad_cam"](model, layer)(x, target)
    piecewise_linear = kind in ("relu_cnn", "resnet18") and score == "logit"  # the Hessian is 0 after the layer
    difference = float((grad_cam - theirs).abs().max() / theirs.abs().max())
    assert difference < 1e-5 if piecewise_linear else difference > 1e-3  # the comparison shows the Hessian term


def test_pytorch_grad_cams_shapley_cam_fails_on_patch_tokens():
    from pytorch_grad_cam import ShapleyCAM

    model, layer = ARCHITECTURES["vit"][0](), ARCHITECTURES["vit"][1]
    with pytest.raises(ValueError, match="Invalid activation shape. Get 3"):
        reference_raw(ShapleyCAM, model, layer, inputs_for(), "vit", targets=targets())


# Finer-CAM

@pytest.mark.parametrize("setting", ["top", "class 5, alpha 0.6, ranks 1 and 2"])
def test_finer_cam_equals_pytorch_grad_cam(architecture, setting):
    from pytorch_grad_cam import FinerCAM

    kind, model, layer = architecture
    x = inputs_for()
    if setting == "top":
        ours = METHODS["finer_cam"](model, layer)(x)
        theirs = reference_raw(FinerCAM, model, layer, x, kind, targets=None)
    else:
        ours = METHODS["finer_cam"](model, layer, alpha=0.6, comparison=(1, 2))(x, 5)
        theirs = reference_raw(FinerCAM, model, layer, x, kind, targets=None, alpha=0.6, comparison_categories=[1, 2],
                               target_idx=5)
    assert_relative(ours, theirs)
    assert float((METHODS["grad_cam"](model, layer)(x, 5 if setting != "top" else None) - theirs).abs().max()) > 0


def test_finer_cam_compares_the_closest_classes():
    from convscope.attribution.finer_cam import FinerTarget

    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    with torch.no_grad():
        logits = model.net(x)
    closest = (logits - logits[:, 4:5]).abs().argsort(1)[:, 1:2]  # rank 1: the class whose logit is nearest
    expected = METHODS["grad_cam"](model, "features")(x, FinerTarget(torch.tensor([4, 4]), closest, 1.0))
    assert torch.equal(METHODS["finer_cam"](model, "features", comparison=1)(x, 4), expected)


def test_finer_cam_refuses_what_it_cannot_compare():
    from convscope import Channel

    model = ARCHITECTURES["relu_cnn"][0]()
    with pytest.raises(ValueError, match="Finer-CAM compares classes"):
        METHODS["finer_cam"](model, "features")(inputs_for(), Channel("features", 0))
    with pytest.raises(ValueError, match="leave no class to compare"):
        METHODS["finer_cam"](model, "features", comparison=(10, 11))(inputs_for(), 0)
    with pytest.raises(ValueError, match="comparison must be ranks"):
        METHODS["finer_cam"](model, comparison=(0,))
    with pytest.raises(ValueError, match="base must be a gradient CAM"):
        METHODS["finer_cam"](model, base="score_cam")
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        METHODS["finer_cam"](model, alpha=float("nan"))
    from torch import nn

    from convscope.models import Model, Preprocess

    segmenter = Model(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1)).eval(),
                      preprocess=Preprocess(resize=None, crop=16, mean=(0, 0, 0), std=(1, 1, 1)))
    with pytest.raises(ValueError, match="compares the classes of a classifier's output"):
        METHODS["finer_cam"](segmenter, "1")(torch.rand(1, 3, 16, 16), 0)  # its region would be ignored


@pytest.mark.parametrize("name", ["shapley_cam", "finer_cam"])
def test_eigen_smooth_of_the_new_cams_equals_pytorch_grad_cam(name):
    from pytorch_grad_cam import FinerCAM, ShapleyCAM

    model, layer = ARCHITECTURES["convnext"][0](), ARCHITECTURES["convnext"][1]
    x = inputs_for()
    ours = METHODS[name](model, layer, eigen_smooth=True)(x, None if name == "finer_cam" else CLASSES)
    theirs = reference_raw(FinerCAM if name == "finer_cam" else ShapleyCAM, model, layer, x, "convnext",
                           targets=None if name == "finer_cam" else targets(), eigen_smooth=True)
    assert_relative(ours, same_sign(ours, theirs))
    assert not torch.allclose(ours, METHODS[name](model, layer)(x, None if name == "finer_cam" else CLASSES))


def test_explain_takes_the_new_cams_settings_and_refuses_them_elsewhere(tmp_path, capsys):
    from convscope.cli import main

    for argv in (["--method", "finer_cam", "--alpha", "0.5", "--comparison", "1", "2"],
                 ["--method", "kpca_cam", "--kernel", "rbf"], ["--method", "shapley_cam", "--aug-smooth"]):
        assert main(["explain", "sample:chelsea", *argv, "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("explain_chelsea_*_overlay_*.png"))) == 3
    capsys.readouterr()
    for flag, value in (("--alpha", "0.5"), ("--kernel", "rbf"), ("--aug-smooth", None)):
        status = main(["explain", "sample:chelsea", "--method", "saliency", flag, *([value] if value else []),
                       "--out", str(tmp_path)])
        assert status == 2 and f"{flag} applies to" in capsys.readouterr().err
