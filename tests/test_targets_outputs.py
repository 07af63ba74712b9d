"""Binary, multi-label, segmentation, regression and detection outputs through the same ``target``, by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope import predict
from convscope.attribution import GradCAM, LayerCAM, Occlusion, Saliency
from convscope.gradients import gradient_pass
from convscope.models import Model, Preprocess
from convscope.targets import BoxScore, ClassProbability, ClassScore, Region, as_target

pytestmark = pytest.mark.usefixtures("one_thread")
PLAIN = Preprocess(resize=None, crop=None, mean=(0, 0, 0), std=(1, 1, 1))


class MeanLinear(nn.Module):
    """``out = W · mean(x over pixels) + b``: a logit per output, known by hand."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.fc = nn.Linear(3, outputs)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.conv.bias.zero_()
            self.fc.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0], [-1.0, 0.0, 2.0]][:outputs]))
            self.fc.bias.copy_(torch.tensor([0.3, -0.2, 0.1][:outputs]))

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def pixels(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed))


def test_one_logit_is_binary_with_sigmoid_probabilities_and_two_classes():
    model = Model(MeanLinear(1).eval(), preprocess=PLAIN)
    x = pixels()
    z = model.net(x)[:, 0].detach()
    found = predict(model, list(x), k=2)
    assert model.classes() == ["class 0", "class 1"]
    expected = torch.stack([torch.sigmoid(z), torch.sigmoid(-z)], 1).sort(1, descending=True).values
    torch.testing.assert_close(found.probabilities, expected)
    assert found.probabilities.max() < 0.99  # no "100 %" for a single logit
    # class 1: probability σ(z), gradient σ'(z)·dz/dx; class 0: score -z
    grad_z = torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1).expand(2, 3, 6, 6) / 36
    sigma = torch.sigmoid(z).view(2, 1, 1, 1)
    torch.testing.assert_close(gradient_pass(model, x, ClassProbability(1)).input_grad, sigma * (1 - sigma) * grad_z)
    torch.testing.assert_close(gradient_pass(model, x, 0).input_grad, -grad_z)
    top = as_target(None, model)
    assert torch.equal(top.classes(model.net(x)), (z > 0).long())
    with pytest.raises(ValueError, match="out of range: this model has 2 classes"):
        as_target(2, model)


def test_multilabel_reads_each_logit_by_its_own_sigmoid():
    model = Model(MeanLinear(3).eval(), preprocess=PLAIN, output="multilabel")
    x = pixels(1)
    logits = model.net(x).detach()
    found = predict(model, list(x), k=3)
    torch.testing.assert_close(found.probabilities, torch.sigmoid(logits).sort(1, descending=True).values)
    target = as_target(2, model)
    probability = ClassProbability(2, "multilabel")(model.net(x), {})
    torch.testing.assert_close(probability, torch.sigmoid(logits[:, 2]))
    assert target(model.net(x), {}).shape == (2,)


class PixelClasses(nn.Module):
    """A 1×1 convolution to 2 classes per pixel: ``out[k] = w_k · x + b_k``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]]).view(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -0.5]))

    def forward(self, x):
        return self.conv(x)


def test_segmentation_class_over_all_pixels_a_box_and_a_mask():
    model = Model(PixelClasses().eval(), preprocess=PLAIN)
    x = pixels(2)
    out = model.net(x).detach()
    torch.testing.assert_close(as_target(1, model)(out, {}), out[:, 1].mean((1, 2)))
    box = ClassScore(0, region=Region(box=(1, 2, 4, 5)))  # x0, y0, x1, y1
    torch.testing.assert_close(box(out, {}), out[:, 0, 2:5, 1:4].mean((1, 2)))
    mask = torch.zeros(6, 6)
    mask[0, 0] = mask[5, 5] = 1
    corners = (out[:, 1, 0, 0] + out[:, 1, 5, 5]) / 2
    torch.testing.assert_close(ClassScore(1, region=Region(mask=mask))(out, {}), corners)
    # the box's gradient is w_0 / 9 inside the box and 0 outside
    grad = gradient_pass(model, x, box).input_grad
    inside = torch.zeros(6, 6, dtype=torch.bool)
    inside[2:5, 1:4] = True
    torch.testing.assert_close(grad[0, :, inside], torch.tensor([1.0, 0.0, -1.0])[:, None].expand(3, 9) / 9)
    assert (grad[:, :, ~inside] == 0).all()
    share = predict(model, list(x), k=2)  # the share of the picture each class takes
    torch.testing.assert_close(share.probabilities.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="not inside the 6×6 output"):
        ClassScore(0, region=Region(box=(0, 0, 7, 3)))(out, {})
    with pytest.raises(ValueError, match=r"must be \[H,W\] = \[6,6\]"):
        ClassScore(0, region=Region(mask=torch.ones(3, 3)))(out, {})


def test_regression_explains_the_output_itself():
    model = Model(MeanLinear(1).eval(), preprocess=PLAIN, output="regression", class_names=["age"])
    x = pixels(3)
    value = model.net(x)[:, 0].detach()
    torch.testing.assert_close(as_target(None, model)(model.net(x), {}), value)
    found = predict(model, list(x), k=1)
    torch.testing.assert_close(found.probabilities[:, 0], value)
    assert found.lines(0)[0].startswith(f"{value[0].item():+.4g}") and "%" not in found.lines(0)[0]
    several = Model(MeanLinear(3).eval(), preprocess=PLAIN, output="regression")
    with pytest.raises(ValueError, match="no top class; give the index"):
        as_target(None, several).classes(several.net(x))


class TinyDetector(nn.Module):
    """Two fixed boxes per image, labels 1 and 2, scores σ(mean of the pixels inside each box)."""

    boxes = torch.tensor([[0.0, 0.0, 3.0, 3.0], [3.0, 3.0, 6.0, 6.0]])

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()

    def forward(self, x):
        maps = self.conv(x)[:, 0]
        return [{"boxes": self.boxes, "labels": torch.tensor([1, 2]),
                 "scores": torch.sigmoid(torch.stack([m[:3, :3].mean(), m[3:, 3:].mean()]))} for m in maps]


def test_detection_box_score_is_the_matching_detection_or_zero():
    model = Model(TinyDetector().eval(), preprocess=PLAIN, output="detection")
    x = pixels(4)
    out = model.net(x)
    target = BoxScore(2, (3.0, 3.0, 6.0, 5.5))
    torch.testing.assert_close(target(out, {}), torch.stack([o["scores"][1] for o in out]))
    assert (BoxScore(1, (3.0, 3.0, 6.0, 6.0))(out, {}) == 0).all()  # no box of class 1 there
    grad = Saliency(model)(x, target)
    assert (grad[:, :, :3, :3] == 0).all() and (grad[:, :, 3:, 3:] != 0).all()
    assert GradCAM(model, "conv")(x, target).shape == (2, 1, 6, 6)  # the box's score through a layer
    local = LayerCAM(model, "conv")(x, target)  # per-position gradients: only the box's pixels
    assert (local[:, :, :3, :3] == 0).all() and (local[:, :, 3:, 3:] != 0).any()
    with pytest.raises(ValueError, match="give target=convscope.BoxScore"):
        as_target(1, model)
    with pytest.raises(ValueError, match="gives boxes, not one class score per picture"):
        Occlusion(model, size=3, stride=3)(x, target)
    with pytest.raises(ValueError, match="gives boxes, not one class score per picture"):
        predict(model, list(x))


def test_binary_model_through_occlusion_and_grad_cam():
    model = Model(MeanLinear(1).eval(), preprocess=PLAIN)
    x = pixels(5)
    maps = Occlusion(model, size=3, stride=3).maps(x, 1)
    z = model.net(x)[:, 0].detach()
    torch.testing.assert_close(maps.clean_score, torch.sigmoid(z))
    assert GradCAM(model, "conv")(x, 1).shape == (2, 1, 6, 6)


def test_command_line_forms_of_regions_boxes_and_the_default_target():
    from convscope.targets import TopClass, parse_target

    segmentation = Model(PixelClasses().eval(), preprocess=PLAIN, class_names=["sky", "road"])
    target = parse_target("region:road:1,2,4,5", segmentation)
    assert target == ClassScore(1, "auto", Region(box=(1.0, 2.0, 4.0, 5.0)))
    assert parse_target("box:3:0,0,10,20.5", segmentation) == BoxScore(3, (0.0, 0.0, 10.0, 20.5))
    regression = Model(MeanLinear(1).eval(), preprocess=PLAIN, output="regression")
    assert parse_target(None, regression) == TopClass("regression")
    for text in ("box:cat:0,0,1,1", "region:road:1,2,3", "box:3"):
        with pytest.raises(ValueError, match="target"):
            parse_target(text, segmentation)
