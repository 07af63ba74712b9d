"""FullGrad against pytorch-grad-cam 1.5 on a ReLU CNN, ResNet-18 and MobileNet-V2 (random weights), and its
refusal of models whose biases it cannot read (ViT, ConvNeXt, timm's fused batch norm)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for, wrap

from convscope.attribution import FullGrad

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = [3, 7]


def with_statistics(model):
    """A copy whose batch norms have running statistics and biases other than 0 and 1: biases to read."""
    import copy

    model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                count = module.num_features
                module.running_mean.copy_(torch.rand(count, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
                module.bias.copy_(0.4 * torch.rand(count, generator=generator) - 0.2)
    return model


def mobilenet_v2():
    import torchvision

    torch.manual_seed(0)
    return wrap(torchvision.models.mobilenet_v2(num_classes=10), "mobilenet_v2")


def reference(model, x: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's FullGrad sum before its final scaling, ``[B,1,H,W]``."""
    from pytorch_grad_cam import FullGrad as Reference
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    seen = []
    with contextlib.redirect_stdout(io.StringIO()):  # it warns that target_layers are ignored
        cam = Reference(model=model.net, target_layers=[])
    made = cam.compute_cam_per_layer
    cam.compute_cam_per_layer = lambda *args: seen.append(made(*args)) or seen[-1]
    with cam:
        cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(c) for c in CLASSES])
    return torch.from_numpy(np.asarray(seen[0]))


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "mobilenet_v2"])
def test_full_grad_equals_pytorch_grad_cam(name):
    model = with_statistics(mobilenet_v2() if name == "mobilenet_v2" else ARCHITECTURES[name][0]())
    x = inputs_for()
    ours = FullGrad(model)(x, CLASSES)
    assert_relative(ours, reference(model, x))


@pytest.mark.parametrize("name", ["vit", "convnext"])
def test_full_grad_refuses_biases_it_cannot_read(name):
    model = ARCHITECTURES[name][0]()
    with pytest.raises(ValueError, match="FullGrad .*(cannot read|has one it cannot read).*use Grad-CAM"):
        FullGrad(model)(inputs_for(), CLASSES)


def test_full_grad_refuses_a_fused_batch_norm_and_batch_statistics():
    from timm.layers import BatchNormAct2d

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), BatchNormAct2d(4), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 10))
    with pytest.raises(ValueError, match=r"'1' \(BatchNormAct2d\) has one it cannot read"):
        FullGrad(wrap(net, "fused"))(inputs_for(), CLASSES)
    net[1] = torch.nn.BatchNorm2d(4, track_running_stats=False)
    with pytest.raises(ValueError, match="normalises with each batch's own statistics"):
        FullGrad(wrap(net, "batch statistics"))(inputs_for(), CLASSES)


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18"])
def test_full_grad_eigen_smooth_equals_pytorch_grad_cam(name):
    from pytorch_grad_cam import FullGrad as Reference
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = with_statistics(ARCHITECTURES[name][0]())
    x = inputs_for()
    ours = FullGrad(model, eigen_smooth=True)(x, CLASSES)
    with contextlib.redirect_stdout(io.StringIO()), Reference(model=model.net, target_layers=[]) as cam:
        theirs = torch.from_numpy(cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(c) for c in CLASSES],
                                      eigen_smooth=True))[:, None]
    # a principal component's sign is arbitrary: flipped, the map scaled to [0, 1] is 1 minus itself
    flipped = ((ours - 0.5) * (theirs - 0.5)).flatten(1).sum(1) < 0
    assert_relative(ours, torch.where(flipped.view(-1, 1, 1, 1), 1 - theirs, theirs))
    plain = FullGrad(model)(x, CLASSES)
    assert not torch.allclose(ours, plain / plain.flatten(1).amax(1).view(-1, 1, 1, 1), atol=1e-2)
    centred = (plain - plain.mean((2, 3), keepdim=True)) * (ours - ours.mean((2, 3), keepdim=True))
    assert (centred.flatten(1).sum(1) > 0).all()  # the sign that agrees with the plain map


def test_full_grad_eigen_smooth_is_checked():
    model = ARCHITECTURES["relu_cnn"][0]()
    with pytest.raises(TypeError, match="eigen_smooth= is True or False"):
        FullGrad(model, eigen_smooth=1)
    with pytest.raises(ValueError, match="at least 8×8 px"):
        FullGrad(model, eigen_smooth=True)(torch.randn(1, 3, 6, 6), 0)
