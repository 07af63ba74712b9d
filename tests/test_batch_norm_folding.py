"""Batch norms folded into convolutions give the same function, leave the user's modules alone, and are refused
where folding would change what is computed."""

from __future__ import annotations

import pytest
import torch
from photos import small_inputs
from torch import nn

from convscope.attribution import Occlusion
from convscope.attribution.batch_norm_folding import fold_batch_norms
from convscope.attribution.occlusion_chain import model_chain
from convscope.models import Model

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_looking(norm: nn.BatchNorm2d, seed: int) -> nn.BatchNorm2d:
    """A batch norm with statistics far from the identity, so that a wrong fold shows."""
    generator = torch.Generator().manual_seed(seed)
    channels = norm.num_features
    norm.running_mean.copy_(torch.rand(channels, generator=generator) - 0.5)
    norm.running_var.copy_(torch.rand(channels, generator=generator) * 2 + 0.3)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
        norm.bias.copy_(torch.rand(channels, generator=generator) - 0.5)
    return norm


class PreNormSkip(nn.Module):
    """A block that adds the convolution's output *before* its norm to the norm's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(4, 4, 3, padding=1), trained_looking(nn.BatchNorm2d(4), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.conv(x)
        return self.norm(raw) + raw


def test_folded_chain_is_the_same_function_and_the_user_modules_are_untouched():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), trained_looking(nn.BatchNorm2d(4), 0), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, stride=2, groups=4), trained_looking(nn.BatchNorm2d(4), 1)).eval()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    x = torch.randn(2, 3, 12, 12)
    chain = model_chain(net, x[:1])
    folded = fold_batch_norms(chain, x[:1])
    kinds = [type(element.module) for element in folded.elements]
    assert kinds == [nn.Conv2d, nn.Identity, nn.ReLU, nn.Conv2d, nn.Identity]
    with torch.no_grad():
        assert torch.allclose(folded.run(x)[1], net(x), atol=1e-5)
    # the user's network: same modules, same values, still with its norms and no bias added
    assert [type(m) for m in net] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
    assert net[0].bias is None and all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_norm_whose_input_is_read_elsewhere_is_not_folded():
    net = nn.Sequential(PreNormSkip(), nn.ReLU()).eval()
    x = torch.randn(1, 4, 8, 8)
    chain = model_chain(net, x)
    assert fold_batch_norms(chain, x) is chain


def test_training_mode_norms_and_kept_outputs_are_not_folded():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), trained_looking(nn.BatchNorm2d(4), 0), nn.ReLU())
    x = torch.randn(1, 3, 8, 8)
    chain = model_chain(net.train(), x)
    assert fold_batch_norms(chain, x) is chain  # batch statistics: not an affine map
    chain = model_chain(net.eval(), x)
    assert fold_batch_norms(chain, x, keep=0) is chain  # element 0's own output is asked for
    assert fold_batch_norms(chain, x) is not chain


def test_occlusion_of_a_convolution_before_a_norm_and_after_the_weights_change(lite0):
    """The feature maps of conv_head (which bn2 follows) stay its own; changed weights are seen at the next call."""
    x = small_inputs(lite0, 64)[:1]
    fast = Occlusion(lite0, size=16, stride=16, progress=False)
    plain = Occlusion(lite0, size=16, stride=16, progress=False, incremental=False)
    found, expected = fast.maps(x, layer="conv_head"), plain.maps(x, layer="conv_head")
    assert fast.path == "incremental"
    assert torch.allclose(found.feature, expected.feature, rtol=1e-4, atol=1e-3)
    norm = lite0.net.bn2
    saved = norm.running_mean.clone()
    try:
        for change in (norm.running_mean, norm.running_mean.data):  # seen by its version counter; unseen
            change.add_(0.5)
            found, expected = fast.maps(x), plain.maps(x)
            assert fast.path == "incremental"
            assert (found.score - expected.score).abs().max() <= 1e-4
    finally:
        norm.running_mean.copy_(saved)


def test_resnet_block_norms_are_folded():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    for index, module in enumerate(m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        trained_looking(module, index)
    model = Model(net.eval(), name="resnet18")
    x = torch.randn(1, 3, 64, 64)
    chain = model_chain(model.net, x)
    folded = fold_batch_norms(chain, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for e in folded.elements for m in e.module.modules())
    with torch.no_grad():
        assert torch.allclose(folded.run(x)[1], net(x), atol=1e-4)


def test_one_folded_copy_serves_every_occluder_size(lite0, monkeypatch):
    from convscope.attribution import occlusion

    folds = []

    def counted(*args, **kwargs):
        folds.append(args[0])
        return fold_batch_norms(*args, **kwargs)

    monkeypatch.setattr(occlusion, "fold_batch_norms", counted)
    monkeypatch.setattr(occlusion, "_CHAINS", type(occlusion._CHAINS)())
    x = small_inputs(lite0, 64)[:1]
    for size in (16, 24, 16):
        fast = Occlusion(lite0, size=size, stride=16, progress=False)
        found = fast.maps(x)
        assert fast.path == "incremental"
        assert (found.score - Occlusion(lite0, size=size, stride=16, progress=False, incremental=False).maps(
            x).score).abs().max() <= 1e-4
    assert len(folds) == 1  # one copy of the weights, not one per occluder size


def test_parametrised_convolutions_are_left_alone():
    from torch.nn.utils.parametrizations import weight_norm

    net = nn.Sequential(weight_norm(nn.Conv2d(3, 4, 3)), trained_looking(nn.BatchNorm2d(4), 0), nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    chain = model_chain(net, x)
    assert fold_batch_norms(chain, x) is chain


def bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), trained_looking(nn.BatchNorm2d(4), 5), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), trained_looking(nn.BatchNorm2d(4), 6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_norms_folded_in_place_run_the_same_function_and_give_the_user_modules_back():
    from convscope.attribution.batch_norm_folding import norms_folded

    net = bn_net()
    x = torch.rand(2, 3, 8, 8)
    modules, parameters = list(net.modules()), list(net.parameters())
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        expected = net(x)
    with norms_folded(net, x[:1], keep=["4"]), torch.no_grad():  # the second norm's output stays as it is
        assert not isinstance(net[1], nn.BatchNorm2d) and net[4] is modules[5]  # modules[0] is the Sequential
        assert torch.allclose(net(x), expected, rtol=1e-5, atol=1e-6)
    assert list(net.modules()) == modules and all(a is b for a, b in zip(net.parameters(), parameters, strict=True))
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    with pytest.raises(RuntimeError, match="inside"), norms_folded(net, x[:1]):
        assert not isinstance(net[4], nn.BatchNorm2d)
        raise RuntimeError("inside")
    assert list(net.modules()) == modules and all(a is b for a, b in zip(net.parameters(), parameters, strict=True))


def folding_module(name: str):
    """The module whose ``norms_folded`` the method ``name`` calls."""
    import importlib

    where = {"layer_conductance": "layer_path", "internal_influence": "layer_path", "kernel_shap": "lime",
             "kpca_cam": "base"}  # kpca_cam folds through base.folded_forward
    return importlib.import_module(f"convscope.attribution.{where.get(name, name)}")


def bn_model() -> Model:
    from convscope.models import Preprocess

    return Model(bn_net(), preprocess=Preprocess(resize=None, crop=8, mean=(0, 0, 0), std=(1, 1, 1)),
                 class_names=["a", "b", "c"])


def method_settings(name: str) -> dict:
    if name in ("layer_conductance", "internal_influence"):
        return {"layer": "5", "steps": 8}
    if name in ("kernel_shap", "lime"):
        return {"feature_mask": torch.arange(4).repeat_interleave(16).view(1, 1, 8, 8).expand(2, 1, 8, 8),
                "samples": 30}
    return {} if name == "deep_lift" else {"layer": "5"}


@pytest.mark.parametrize("name", ["layer_conductance", "internal_influence", "kernel_shap", "lime", "deep_lift",
                                  "kpca_cam", "layer_gradient_x_activation"])
def test_methods_give_the_same_maps_with_norms_folded(name, monkeypatch):
    from contextlib import contextmanager, nullcontext

    from convscope.attribution import make_method

    model = bn_model()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    method = make_method(name, model, **method_settings(name))
    module = folding_module(name)
    folding, folded_norms = module.norms_folded, []

    @contextmanager
    def watched(*args, **kwargs):
        with folding(*args, **kwargs):
            folded_norms.append(sum(isinstance(m, nn.BatchNorm2d) for m in model.net.modules()))
            yield

    monkeypatch.setattr(module, "norms_folded", watched)
    folded = method(x, [0, 2])
    monkeypatch.setattr(module, "norms_folded", lambda *a, **k: nullcontext())
    plain = method(x, [0, 2])
    assert folded_norms == [0]  # both norms were folded while it ran
    assert torch.allclose(folded, plain, rtol=1e-4, atol=1e-5 * float(plain.abs().max()))


@pytest.mark.parametrize("name", ["deep_lift", "kpca_cam", "layer_gradient_x_activation"])
def test_folds_are_remembered_until_the_model_changes(name, monkeypatch):
    """The pairs are found and checked (two passes) once; a weight written in place, a training-mode pass, a new
    parameter or module, or hooks make the next call find them again, and every call equals the unfolded maps."""
    from contextlib import nullcontext

    from convscope.attribution import batch_norm_folding, make_method

    model = bn_model()
    net = model.net
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    method = make_method(name, model, **method_settings(name))
    module = folding_module(name)
    checks = []

    def counted(*args, **kwargs):
        checks.append(1)
        return checked(*args, **kwargs)

    checked = batch_norm_folding._checked_folds
    monkeypatch.setattr(batch_norm_folding, "_checked_folds", counted)

    def same_as_unfolded() -> None:
        folded = method(x, [0, 2])
        with monkeypatch.context() as plain:
            plain.setattr(module, "norms_folded", lambda *a, **k: nullcontext())
            expected = method(x, [0, 2])
        assert torch.allclose(folded, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))

    modules, parameters = list(net.modules()), list(net.parameters())
    same_as_unfolded()
    same_as_unfolded()
    assert len(checks) == 1  # the second call used the remembered folds
    assert list(net.modules()) == modules and all(a is b for a, b in zip(net.parameters(), parameters, strict=True))
    with torch.no_grad():
        net[1].running_mean.add_(0.3)  # in place: its version counter moves
    same_as_unfolded()
    assert len(checks) == 2
    net[4].train()(torch.randn(4, 4, 8, 8))  # a training-mode pass updates the statistics
    net.eval()
    same_as_unfolded()
    assert len(checks) == 3
    net[3].weight = nn.Parameter(net[3].weight.detach() * 2)
    same_as_unfolded()
    assert len(checks) == 4
    net[4] = trained_looking(nn.BatchNorm2d(4), 8).eval()
    same_as_unfolded()
    assert len(checks) == 5
    net[0].weight.data = net[0].weight.detach() * 0.5  # another tensor behind the same parameter
    same_as_unfolded()
    assert len(checks) == 6
    net[1].running_var.data.mul_(2)  # in place through .data: no version counter moves
    same_as_unfolded()
    assert len(checks) == 7
    net[3].weight.data.add_(0.25)
    same_as_unfolded()
    assert len(checks) == 8
    handle = net[3].register_forward_hook(lambda *args: None)  # a hooked convolution is left alone
    try:
        same_as_unfolded()
        assert len(checks) == 9
    finally:
        handle.remove()
    same_as_unfolded()
    assert len(checks) == 9  # the plan without hooks is still the model's


def test_the_remembered_folds_do_not_keep_the_model_alive():
    import gc
    import weakref

    from convscope.attribution import LayerGradientXActivation

    model = bn_model()
    LayerGradientXActivation(model, "5")(torch.rand(1, 3, 8, 8), [0])
    gone = weakref.ref(model.net)
    del model
    gc.collect()
    assert gone() is None
