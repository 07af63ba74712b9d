"""HiResCAM, Grad-CAM element-wise, XGrad-CAM, Eigen-CAM, EigenGrad-CAM and eigen_smooth against
pytorch-grad-cam 1.5 on a ReLU CNN, ResNet-18 and a ViT's patch tokens (random weights).

pytorch-grad-cam's raw map (before its ReLU, min-max scaling and resizing) is read where it makes it
(``get_cam_image``) and compared with convscope's raw map; one test also compares the finished maps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for, vit_tokens_to_grid

from convscope.attribution import METHODS
from convscope.attribution.eigen import first_component
from convscope.attribution.xgrad_cam import XGradCAM
from convscope.render.overlay import upsample

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = [3, 7]
# convscope name → pytorch-grad-cam class name
REFERENCES = {"grad_cam": "GradCAM", "hires_cam": "HiResCAM", "grad_cam_element_wise": "GradCAMElementWise",
              "xgrad_cam": "XGradCAM", "eigen_cam": "EigenCAM", "eigen_grad_cam": "EigenGradCAM",
              "grad_cam_plus_plus": "GradCAMPlusPlus", "layer_cam": "LayerCAM"}
EIGEN = ("eigen_cam", "eigen_grad_cam")


class XGradCAMWithEpsilon(XGradCAM):
    epsilon = 1e-7  # pytorch-grad-cam's


@pytest.fixture(scope="module", params=["relu_cnn", "resnet18", "vit"])
def architecture(request):
    maker, layer = ARCHITECTURES[request.param]
    return request.param, maker(), layer


def reference_raw(name: str, model, layer: str, x: torch.Tensor, eigen_smooth: bool = False, *,
                  architecture: str = "", finished: bool = False) -> torch.Tensor:
    """pytorch-grad-cam's map before its ReLU and scaling ``[B,1,h,w]`` (or its finished map ``[B,H,W]``)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    reshape = vit_tokens_to_grid if architecture == "vit" else None
    cam = getattr(pytorch_grad_cam, REFERENCES[name])(model=model.net, target_layers=[model.layer(layer)],
                                                      reshape_transform=reshape)
    seen = []
    made = cam.get_cam_image
    cam.get_cam_image = lambda *args, **kwargs: seen.append(made(*args, **kwargs)) or seen[-1]
    with cam:
        result = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(c) for c in CLASSES],
                     eigen_smooth=eigen_smooth)
    return torch.from_numpy(result) if finished else torch.from_numpy(np.asarray(seen[0]))[:, None]


def same_sign(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """``theirs`` with each image's sign flipped to agree with ``ours``: a principal component's sign is arbitrary."""
    agree = (ours.double() * theirs.double()).flatten(1).sum(1)
    return theirs * torch.where(agree < 0, -1.0, 1.0).view(-1, 1, 1, 1)


@pytest.mark.parametrize("name", ["hires_cam", "grad_cam_element_wise", "xgrad_cam", "eigen_cam", "eigen_grad_cam"])
def test_raw_maps_equal_pytorch_grad_cam(architecture, name):
    kind, model, layer = architecture
    x = inputs_for()
    method = (XGradCAMWithEpsilon if name == "xgrad_cam" else METHODS[name])(model, layer)
    ours = method(x, CLASSES)
    theirs = reference_raw(name, model, layer, x, architecture=kind)
    assert_relative(ours, same_sign(ours, theirs) if name in EIGEN else theirs)


@pytest.mark.parametrize("name", ["grad_cam", "layer_cam", "hires_cam", "xgrad_cam"])
def test_eigen_smooth_equals_pytorch_grad_cam(architecture, name):
    kind, model, layer = architecture
    x = inputs_for()
    method = (XGradCAMWithEpsilon if name == "xgrad_cam" else METHODS[name])(model, layer, eigen_smooth=True)
    ours = method(x, CLASSES)
    assert_relative(ours, same_sign(ours, reference_raw(name, model, layer, x, eigen_smooth=True, architecture=kind)))


def test_first_component_is_exact_and_its_sign_follows_the_channel_sum():
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    maps = torch.randn(3, 6, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = first_component(maps)
    theirs = torch.from_numpy(get_2d_projection(maps.numpy()).astype(np.float64))[:, None]
    assert_relative(ours, same_sign(ours, theirs), 1e-6)  # their float64 SVD, returned as float32
    centred = maps.sum(1) - maps.sum(1).mean((1, 2), keepdim=True)
    assert ((ours[:, 0] * centred).sum((1, 2)) >= 0).all()
    assert torch.equal(first_component(-maps), -ours)  # flipping the maps flips the sign, nothing else
    assert torch.equal(first_component(torch.zeros(1, 3, 2, 2)), torch.zeros(1, 1, 2, 2))


def test_finished_hires_cam_equals_pytorch_grad_cams(architecture):
    kind, model, layer = architecture
    x = inputs_for()
    raw = METHODS["hires_cam"](model, layer)(x, CLASSES)[:, 0].clamp_min(0)

    def scaled(maps):  # pytorch-grad-cam: minus the minimum, over the maximum + 1e-7
        low = maps.flatten(1).amin(1).view(-1, 1, 1)
        return (maps - low) / ((maps - low).flatten(1).amax(1).view(-1, 1, 1) + 1e-7)

    ours = scaled(upsample(scaled(raw), tuple(x.shape[-2:])))
    theirs = reference_raw("hires_cam", model, layer, x, architecture=kind, finished=True)
    assert float((ours - theirs).abs().max()) < 1e-4  # bilinear resizing: cv2 in fixed steps, torch in float


def test_hires_cam_adds_up_to_the_score_on_gap_and_linear():
    # After the layer only global average pooling and a linear layer: Σ_ij HiResCAM = S − bias.
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    maps = METHODS["hires_cam"](model, "features")(x, CLASSES)
    with torch.no_grad():
        scores = model.net(x)[torch.arange(2), CLASSES] - model.net.fc.bias[CLASSES]
    assert torch.allclose(maps.sum((1, 2, 3)), scores, atol=1e-5)


def test_eigen_cam_ignores_the_target_and_eigen_smooth_is_checked():
    model = ARCHITECTURES["relu_cnn"][0]()
    x = inputs_for()
    method = METHODS["eigen_cam"](model, "features")
    assert torch.equal(method(x, 1), method(x, [4, 5]))
    with pytest.raises(TypeError, match="eigen_smooth= is True or False"):
        METHODS["hires_cam"](model, eigen_smooth="yes")


def ablation_reference(model, layer: str, x: torch.Tensor, classes: list[int], prefix: int = 0) -> torch.Tensor:
    """Ablation-CAM written out plainly: one image and one zeroed feature map per forward pass."""
    module = model.layer(layer)
    maps = []
    for b, c in enumerate(classes):
        seen = []
        handle = module.register_forward_hook(lambda m, a, out, seen=seen: seen.append(out.detach().clone()))
        with torch.no_grad():
            score = model.net(x[b:b + 1])[0, c]
        handle.remove()
        raw = seen[0]
        grid = raw if raw.dim() == 4 else vit_tokens_to_grid(raw)
        total = torch.zeros(grid.shape[-2:], dtype=x.dtype)
        for k in range(grid.shape[1]):
            ablated = raw.clone()
            if raw.dim() == 4:
                ablated[:, k] = 0
            else:
                ablated[:, prefix:, k] = 0
            handle = module.register_forward_hook(lambda m, a, out, ablated=ablated: ablated)
            with torch.no_grad():
                lost = (score - model.net(x[b:b + 1])[0, c]) / score
            handle.remove()
            total += lost * grid[0, k]
        maps.append(total)
    return torch.stack(maps)[:, None]


ABLATION = {"relu_cnn": ("features", 64), "resnet18": ("layer1", 32), "vit": ("blocks.11.norm1", 32)}


def double(model):
    import copy

    twin = copy.deepcopy(model)
    twin.net.double()
    return twin


@pytest.mark.parametrize("kind", ["relu_cnn", "resnet18"])
def test_ablation_cam_equals_pytorch_grad_cam_on_layers_after_a_relu(kind):
    import contextlib
    import io

    from pytorch_grad_cam import AblationCAM as Reference
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, (layer, side) = ARCHITECTURES[kind][0](), ABLATION[kind]
    x = inputs_for()[..., :side, :side].contiguous()
    ours = METHODS["ablation_cam"](model, layer, batch_size=7)(x, CLASSES)
    seen = []
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        cam = Reference(model=model.net, target_layers=[model.layer(layer)], batch_size=5)
        made = cam.get_cam_image
        cam.get_cam_image = lambda *args, **kwargs: seen.append(made(*args, **kwargs)) or seen[-1]
        cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(c) for c in CLASSES])
    # The weights (S − S_k) / S are differences of two float32 scores, whose last bits differ between
    # convscope's channels-last and pytorch-grad-cam's NCHW convolutions (up to 2e-5 on ResNet-18). In float64
    # (the next test) convscope equals the paper's recipe to 1e-12.
    assert_relative(ours, torch.from_numpy(np.asarray(seen[0]))[:, None], 5e-5)


@pytest.mark.parametrize("kind", ["relu_cnn", pytest.param("resnet18", marks=pytest.mark.slow),
                                  pytest.param("vit", marks=pytest.mark.slow)])  # float64 passes: 15 s each
def test_ablation_cam_in_float64_equals_the_papers_recipe_written_out(kind):
    # On ViT's patch tokens only the grid positions are zeroed. pytorch-grad-cam's ViT ablation writes min − 1e7
    # instead of 0 on a LayerNorm's mixed-sign output (and into the class token): not the paper's recipe.
    layer, side = ABLATION[kind]
    model = double(ARCHITECTURES[kind][0](side) if kind == "vit" else ARCHITECTURES[kind][0]())
    x = inputs_for(1)[..., :side, :side].double()
    ours = METHODS["ablation_cam"](model, layer, batch_size=64)(x, CLASSES[:1])
    assert_relative(ours, ablation_reference(model, layer, x, CLASSES[:1], prefix=1 if kind == "vit" else 0), 1e-10)


def test_ablation_cam_refuses_a_layer_that_runs_twice_and_a_zero_score():
    model = ARCHITECTURES["resnet18"][0]()
    with pytest.raises(ValueError, match="runs .* times in one forward pass"):
        METHODS["ablation_cam"](model, "layer1.0.relu")(inputs_for(), CLASSES)
    with pytest.raises(ValueError, match="divides by the target's score, which is 0"):
        METHODS["ablation_cam"](model, "layer3")(inputs_for(), lambda output: output[:, 0] * 0)
