"""Models from files (a factory in a .py file, TorchScript, torch.export), class names files, random weights."""

from __future__ import annotations

import textwrap

import pytest
import torch

from convscope.cli import main
from convscope.models import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn


    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                             nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


    def three():
        return 3
''')


@pytest.fixture
def factory(tmp_path):
    (tmp_path / "net.py").write_text(FACTORY)
    (tmp_path / "names.txt").write_text("cat\n\ndog\nbird\n")
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_factory_file_with_class_names(factory, capsys):
    model = load_model(f"{factory}/net.py:make", classes=factory / "names.txt", device="cpu")
    assert model.classes() == ["cat", "dog", "bird"] and model.name == "net"
    code, out, err = run(capsys, "predict", "sample:chelsea", "--model", f"{factory}/net.py:make", "--classes",
                         str(factory / "names.txt"), "--device", "cpu", "-k", "3")
    assert code == 0 and "dog (1)" in out, err
    code, _, err = run(capsys, "explain", "sample:chelsea", "--model", f"{factory}/net.py:make", "--method",
                       "grad_cam", "--out", str(factory / "out"), "--device", "cpu")
    assert code == 0 and len(list((factory / "out").glob("explain_chelsea_grad_cam_map_*.png"))) == 1, err
    for spec, message in ((f"{factory}/net.py:three", "returned a int; it must return a torch.nn.Module"),
                          (f"{factory}/net.py:nope", "has no function 'nope'; it defines: make, three"),
                          (f"{factory}/net.py", "write FILE.py:FUNCTION")):
        code, _, err = run(capsys, "predict", "sample:chelsea", "--model", spec, "--device", "cpu")
        assert code == 2 and message in err and err.count("\n") == 1
    (factory / "four.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(ValueError, match="4 class names were given for a model with 3 classes"):
        load_model(f"{factory}/net.py:make", classes=factory / "four.txt")


def test_torchscript_and_export_files(factory):
    net = load_model(f"{factory}/net.py:make", device="cpu").net
    x = torch.rand(1, 3, 224, 224)
    torch.jit.trace(net, x).save(str(factory / "traced.pt"))
    torch.export.save(torch.export.export(net, (x,), strict=False), str(factory / "exported.pt2"))
    torch.save(net.state_dict(), factory / "state.pth")
    from convscope.attribution import GradCAM, Saliency

    scripted = load_model(str(factory / "traced.pt"), device="cpu")
    exported = load_model(str(factory / "exported.pt2"), device="cpu")
    torch.testing.assert_close(scripted.net(x), net(x))
    torch.testing.assert_close(exported.net(x), net(x))
    torch.testing.assert_close(Saliency(scripted)(x, 1), Saliency(net)(x, 1))
    torch.testing.assert_close(GradCAM(exported, "2")(x, 1), GradCAM(net, "2")(x, 1))  # layers are modules again
    with pytest.raises(ValueError, match="TorchScript model, whose layers cannot be hooked"):
        GradCAM(scripted)(x, 1)
    with pytest.raises(ValueError, match="It may be a state dict: give the architecture's name with --weights"):
        load_model(str(factory / "state.pth"))


def test_random_weights_by_name():
    model = load_model("resnet18", weights="random", device="cpu")
    assert model.name == "resnet18 (random weights)" and len(model.classes()) == 1000
    with pytest.raises(ValueError, match="applies to torchvision and timm names only"):
        load_model(torch.nn.Linear(2, 2), weights="random")
