"""aug_smooth (test-time augmentation) against pytorch-grad-cam 1.5's ``aug_smooth=True`` on a ReLU CNN, ResNet-18
and a ViT's patch tokens (random weights): the finished maps, mirrored copies and brightness multipliers included."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from architectures import ARCHITECTURES, inputs_for, vit_tokens_to_grid
from test_attribution_cams import GradCAMPlusPlusWithEpsilon  # pytorch-grad-cam's 1e-6 in the denominator

from convscope import Channel, Neuron
from convscope.attribution import METHODS, make_method
from convscope.attribution.xgrad_cam import XGradCAM

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = [3, 7]
# convscope name → pytorch-grad-cam class name
REFERENCES = {"grad_cam": "GradCAM", "hires_cam": "HiResCAM", "layer_cam": "LayerCAM",
              "grad_cam_element_wise": "GradCAMElementWise", "xgrad_cam": "XGradCAM",
              "grad_cam_plus_plus": "GradCAMPlusPlus", "shapley_cam": "ShapleyCAM"}


class XGradCAMWithEpsilon(XGradCAM):
    epsilon = 1e-7  # pytorch-grad-cam's


OURS = {"xgrad_cam": XGradCAMWithEpsilon, "grad_cam_plus_plus": GradCAMPlusPlusWithEpsilon}


@pytest.fixture(scope="module", params=["relu_cnn", "resnet18", "vit"])
def architecture(request):
    maker, layer = ARCHITECTURES[request.param]
    return request.param, maker(), layer


def reference(name: str, model, layer, x: torch.Tensor, kind: str) -> torch.Tensor:
    """pytorch-grad-cam's finished map ``[B,H,W]`` with ``aug_smooth=True``."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with contextlib.redirect_stdout(io.StringIO()):
        cam = getattr(pytorch_grad_cam, name)(model=model.net, target_layers=[model.layer(layer)] if layer else [],
                                              reshape_transform=vit_tokens_to_grid if kind == "vit" else None)
        try:
            found = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(c) for c in CLASSES], aug_smooth=True)
        finally:
            for handle in cam.activations_and_grads.handles:
                handle.remove()
    return torch.from_numpy(found)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_aug_smooth_equals_pytorch_grad_cam(architecture, name):
    kind, model, layer = architecture
    if name == "shapley_cam" and kind == "vit":
        pytest.skip("pytorch-grad-cam's ShapleyCAM fails on patch tokens (test_attribution_cam_extras.py)")
    x = inputs_for()
    ours = OURS.get(name, METHODS[name])(model, layer, aug_smooth=True)(x, CLASSES)
    theirs = reference(REFERENCES[name], model, layer, x, kind)
    assert ours.shape == (2, 1, *x.shape[-2:]) and float(ours.amin()) >= 0 and float(ours.amax()) <= 1
    # ≤ 2.4e-7 seen: the maps are in [0, 1], torch's bilinear resize and cv2's agree at these sizes
    assert float((ours[:, 0] - theirs).abs().max()) < 1e-5
    plain = OURS.get(name, METHODS[name])(model, layer)(x, CLASSES)
    assert float((METHODS[name](model, layer).heat(plain, tuple(x.shape[-2:])) - theirs).abs().max()) > 1e-3


@pytest.mark.parametrize("kind", ["relu_cnn", "resnet18"])
def test_aug_smooth_of_full_grad_equals_pytorch_grad_cam(kind):
    model = ARCHITECTURES[kind][0]()
    x = inputs_for()
    ours = METHODS["full_grad"](model, aug_smooth=True)(x, CLASSES)
    assert float((ours[:, 0] - reference("FullGrad", model, None, x, kind)).abs().max()) < 1e-5


@pytest.mark.parametrize("name", ["grad_cam", "eigen_cam", "kpca_cam", "score_cam", "cam", "finer_cam"])
def test_aug_smooth_mirrors_with_the_picture_and_batches_like_single_pictures(name):
    # The six copies of a mirrored picture are the six copies of the picture, mirrored: the map is mirrored.
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    method = make_method(name, model, layer="features" if name != "cam" else None, aug_smooth=True)
    maps = method(x, CLASSES)
    torch.testing.assert_close(method(x.flip(-1), CLASSES), maps.flip(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(method(x[1:], CLASSES[1]), maps[1:], atol=1e-6, rtol=0)
    assert not torch.allclose(maps, make_method(name, model, layer="features" if name != "cam" else None)
                              .heat(make_method(name, model, layer="features" if name != "cam" else None)(x, CLASSES),
                                    (64, 64))[:, None], atol=1e-3)


def test_aug_smooth_refuses_what_a_mirror_would_move_and_is_checked():
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    with pytest.raises(ValueError, match="moves a neuron"):
        METHODS["grad_cam"](model, "features", aug_smooth=True)(x, Neuron("features", 0, 1, 1))
    assert METHODS["grad_cam"](model, "features", aug_smooth=True)(x, Channel("features", 0)).shape == (2, 1, 64, 64)
    with pytest.raises(TypeError, match="aug_smooth= is True or False"):
        METHODS["grad_cam"](model, aug_smooth=1)
    with pytest.raises(ValueError, match="takes no option 'aug_smooth'"):
        make_method("guided_grad_cam", model, aug_smooth=True)  # it would rectify signed gradients
    with pytest.raises(ValueError, match="takes no option 'aug_smooth'"):
        make_method("saliency", model, aug_smooth=True)
