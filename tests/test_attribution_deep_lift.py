"""DeepLIFT (rescale rule) against Captum's DeepLift, its summation to delta on each architecture, its refusals,
and a case where Captum's own result does not add up."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from architectures import ARCHITECTURES, assert_relative, inputs_for, wrap
from torch import nn

from convscope.attribution import DeepLift
from convscope.models import Model, Preprocess

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = torch.tensor([3, 7])


def captum_deep_lift(model, x, baseline):
    from captum.attr import DeepLift as CaptumDeepLift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CaptumDeepLift(model.net).attribute(x.clone(), baselines=baseline, target=CLASSES).detach()


def relu_cnn_average_pooled():
    model = copy.deepcopy(ARCHITECTURES["relu_cnn"][0]())
    model.net.features[2] = nn.AvgPool2d(2)  # Captum's rule is wrong where a ReLU feeds a max-pool (test below)
    return model


def timm_resnet18():
    import timm

    torch.manual_seed(0)  # timm's blocks have one ReLU module per use (torchvision's reuse one, which Captum cannot)
    return wrap(timm.create_model("resnet18", pretrained=False, num_classes=10), "timm_resnet18")


def mobilenet_v2(relu: bool):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(num_classes=10)
    for module in net.modules():
        for name, child in module.named_children():
            if relu and isinstance(child, nn.ReLU6):
                setattr(module, name, nn.ReLU())  # Captum has no ReLU6 rule: it would treat it as linear
    return wrap(net, "mobilenet_v2")


MAKERS = {"relu_cnn": relu_cnn_average_pooled, "resnet18": timm_resnet18, "mobilenet_v2": lambda: mobilenet_v2(True)}


@pytest.mark.parametrize("name", list(MAKERS))
def test_deep_lift_equals_captums_and_adds_up(name):
    model = MAKERS[name]()
    x = inputs_for()
    baseline = 0.1 * torch.randn(1, *x.shape[1:], generator=torch.Generator().manual_seed(9))
    if name == "resnet18":  # a ReLU feeds its max-pool: Captum agrees only where the baseline's activations there are 0
        baseline = torch.zeros_like(baseline)
    ours = DeepLift(model, baseline=baseline)(x, CLASSES)
    assert_relative(ours, captum_deep_lift(model, x, baseline.expand_as(x)))
    with torch.no_grad():
        delta = (model.net(x) - model.net(baseline.expand_as(x)))[torch.arange(2), CLASSES]
    assert torch.allclose(ours.sum((1, 2, 3)), delta, rtol=1e-4, atol=1e-6)


def test_relu6_and_max_pooling_add_up():
    for model in (mobilenet_v2(False), ARCHITECTURES["relu_cnn"][0]()):
        x = inputs_for()
        ours = DeepLift(model).attribute(x, target=CLASSES, baselines=0.0)
        with torch.no_grad():
            delta = (model.net(x) - model.net(torch.zeros_like(x)))[torch.arange(2), CLASSES]
        assert torch.allclose(ours.sum((1, 2, 3)), delta, rtol=1e-4, atol=1e-6)


def test_where_a_relu_feeds_a_max_pool_captum_falls_back_to_the_gradient_and_does_not_add_up():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1, 2)).eval()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
        net[-1].weight.fill_(1.0)
        net[-1].bias.zero_()
    model = Model(net, preprocess=Preprocess(resize=None, crop=2, mean=(0,), std=(1,), channels=1))
    x, baseline = torch.tensor([[[[3.0, 1.0], [0.0, 0.0]]]]), torch.tensor([[[[0.0, 2.0], [0.0, 0.0]]]])
    # f(x) − f(x') = max(3, 1) − max(0, 2) = 1, all of it at the pixel that made the maximum
    ours = DeepLift(model, baseline=baseline)(x, 0)
    assert torch.equal(ours.flatten(), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    from captum.attr import DeepLift as CaptumDeepLift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CaptumDeepLift(net).attribute(x.clone(), baselines=baseline, target=0).detach()
    assert torch.equal(theirs.flatten(), torch.tensor([3.0, 0.0, 0.0, 0.0]))  # the gradient × Δx: sums to 3, not 1


def test_deep_lift_refuses_what_it_has_no_rule_for():
    with pytest.raises(ValueError, match=r"DeepLIFT has no rule for .* \((LayerNorm|GELU|Linear|Attention)"):
        DeepLift(ARCHITECTURES["vit"][0]())(inputs_for(), CLASSES)

    class Functional(nn.Module):  # a nonlinearity no module hook can see
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(torch.nn.functional.gelu(self.conv(x)).mean((2, 3)))

    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"add up to .* not to S\(x\) − S\(x'\).*functional call"):
        DeepLift(wrap(Functional(), "functional"))(inputs_for(), CLASSES)


@pytest.mark.parametrize("name", ["relu_cnn", "mobilenet_v2"])
def test_deep_lift_shap_equals_captums(name):
    from captum.attr import DeepLiftShap as CaptumDeepLiftShap

    from convscope.attribution import DeepLiftShap

    model = MAKERS[name]()
    x = inputs_for()
    references = 0.3 * torch.randn(3, *x.shape[1:], generator=torch.Generator().manual_seed(4))
    ours = DeepLiftShap(model, baseline=references, batch_size=4)(x, CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CaptumDeepLiftShap(model.net).attribute(x.clone(), baselines=references, target=CLASSES).detach()
    assert_relative(ours, theirs)


@pytest.mark.parametrize("name", ["relu_cnn", "resnet18", "mobilenet_v2"])
def test_deep_lift_shap_adds_up_to_the_score_minus_the_mean_baseline_score(name):
    from convscope.attribution import DeepLiftShap

    model = ARCHITECTURES["relu_cnn"][0]() if name == "relu_cnn" else MAKERS[name]()
    x = inputs_for()
    method = DeepLiftShap(model, references=3, seed=1)
    references = method.baselines_for(x)
    ours = method(x, CLASSES)
    with torch.no_grad():
        expected = model.net(x)[torch.arange(2), CLASSES] - model.net(references)[:, CLASSES].mean(0)
    assert torch.allclose(ours.sum((1, 2, 3)), expected, rtol=1e-4, atol=1e-6)
    single = torch.cat([method(x[b:b + 1], int(CLASSES[b])) for b in range(2)])
    assert torch.allclose(ours, single, rtol=1e-5, atol=1e-7)  # batched equals image by image


def test_a_baseline_per_image_and_one_shared_by_all_give_captums_maps():
    model = relu_cnn_average_pooled()
    x = inputs_for()
    own = 0.1 * torch.randn(*x.shape, generator=torch.Generator().manual_seed(4))  # one baseline per image
    assert_relative(DeepLift(model, baseline=own)(x, CLASSES), captum_deep_lift(model, x, own))
    shared = own[:1].expand_as(x)  # the same for both: its pass runs once
    ours = DeepLift(model, baseline=shared)(x, CLASSES)
    assert_relative(ours, captum_deep_lift(model, x, shared.contiguous()))
    assert_relative(ours, DeepLift(model, baseline=shared.contiguous())(x, CLASSES))


def test_deep_lift_refuses_a_model_whose_activations_depend_on_the_values():
    class Branching(nn.Module):  # the rectifier runs on the input only: no baseline value to compare with
        def __init__(self):
            super().__init__()
            self.conv, self.relu, self.fc = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 10)

        def forward(self, x):
            y = self.conv(x)
            return self.fc((self.relu(y) if bool(x.abs().sum() > 0) else y).mean((2, 3)))

    torch.manual_seed(0)
    with pytest.raises(ValueError, match="ran other activations on the inputs than on the baseline"):
        DeepLift(wrap(Branching(), "branching"), baseline=torch.zeros(1, 3, 64, 64))(inputs_for(), CLASSES)
