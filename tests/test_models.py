"""Loading models: the embedded EfficientNet-Lite, torchvision/timm by name with a local weights file, own modules."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from convscope import load_model, predict
from convscope.images import load_sample
from convscope.models.lite import match_by_order
from convscope.models.loading import read_state_dict

CATS = {"tiger cat", "Egyptian cat", "tabby"}


def test_lite0_recognises_the_cat_and_the_espresso(lite0):
    result = predict(lite0, [load_sample("chelsea"), load_sample("coffee")], k=1)
    assert result.names[0][0] in CATS
    assert result.names[1][0] == "espresso"


def test_lite0_carries_its_preprocessing_and_names(lite0):
    p = lite0.preprocess
    assert (p.resize, p.crop, p.mean, p.std) == (256, 224, (0.5,) * 3, (0.5,) * 3)
    assert len(lite0.classes()) == 1000 and lite0.classes()[281] == "tabby"
    assert lite0.class_index("tabby cat") == 281
    assert "blocks.3.0.conv_pw" in lite0.layer_names()


@pytest.mark.parametrize("name, side", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_larger_lites_load_and_predict(name, side):
    model = load_model(name, device="cpu")
    assert model.preprocess.crop == side
    assert predict(model, load_sample("coffee"), k=1).names[0][0] == "espresso"


def test_match_by_order_checks_shapes_and_kinds():
    target = OrderedDict(a_weight=torch.zeros(2, 3), a_bias=torch.zeros(2))
    target = OrderedDict((k.replace("_", "."), v) for k, v in target.items())
    good = OrderedDict([("x.weight", torch.ones(2, 3)), ("x.bias", torch.ones(2))])
    assert list(match_by_order(good, target)) == ["a.weight", "a.bias"]
    with pytest.raises(ValueError, match="does not match"):
        match_by_order(OrderedDict([("x.weight", torch.ones(3, 2)), ("x.bias", torch.ones(2))]), target)
    with pytest.raises(ValueError, match="does not match"):
        match_by_order(OrderedDict([("x.bias", torch.ones(2, 3)), ("x.weight", torch.ones(2))]), target)
    with pytest.raises(ValueError, match="has 1 tensors"):
        match_by_order(OrderedDict([("x.weight", torch.ones(2, 3))]), target)


def test_torchvision_model_from_a_local_weights_file(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    model = load_model("resnet18", weights=path, device="cpu")
    for (key, expected), actual in zip(reference.state_dict().items(), model.net.state_dict().values(), strict=True):
        torch.testing.assert_close(actual, expected, msg=key)
    assert (model.preprocess.resize, model.preprocess.crop) == (256, 224)
    assert model.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))
    assert model.classes()[281] == "tabby" and model.class_index("tabby cat") == 281
    assert not model.net.training


def test_timm_model_from_a_local_weights_file(tmp_path):
    import timm

    reference = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "r10t.pt"
    torch.save(reference.state_dict(), path)
    model = load_model("resnet10t", weights=path, device="cpu")
    torch.testing.assert_close(model.net.conv1[0].weight, reference.conv1[0].weight)


def test_weights_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model("resnet18", weights=tmp_path / "missing.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights file"):
        read_state_dict(broken)
    wrong = tmp_path / "wrong.pth"
    torch.save(nn.Linear(2, 2).state_dict(), wrong)
    with pytest.raises(ValueError, match="does not fit resnet18"):
        load_model("resnet18", weights=wrong)


def test_download_failure_says_how_to_work_offline(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(ValueError, match="--weights PATH"):
        load_model("resnet18")


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        load_model("efficientnet_lite")


def test_own_module(tiny_net):
    model = load_model(tiny_net, device="cpu")
    assert model.net is tiny_net
    assert model.classes() == ["class 0", "class 1", "class 2"]
    with pytest.raises(TypeError):
        load_model(42)  # type: ignore[arg-type]
