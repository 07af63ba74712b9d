"""The atlas: its files follow the layout the site reads, a killed run resumes without redoing channels, a batch of
channels gives each channel's pictures alone, links and orders are right by definition, bad input is refused."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from convscope.atlas import build
from convscope.atlas.build import make_atlas
from convscope.atlas.circuits import gradient_strength, links
from convscope.atlas.diversity import group_similarity, reference_similarity
from convscope.atlas.ordering import similarity_order
from convscope.atlas.visualise import Recipe, recipe_for, start_images, visualise_channels
from convscope.atlas.working_copy import working_copy
from convscope.models import Model, load_model
from convscope.models.preprocessing import Preprocess

TINY = Recipe(size=32, steps=4, seed=0)
CHANNELS = [0, 1, 2]


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model("fashion_cnn")


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    """A scan of 16 labelled 28×28 pictures (two classes: bright squares, bright bars) at relu1 and relu2."""
    from convscope.cli import main

    root = tmp_path_factory.mktemp("atlas_scan")
    generator = torch.Generator().manual_seed(0)
    for label in ("squares", "bars"):
        (root / "pictures" / label).mkdir(parents=True)
        for n in range(8):
            picture = torch.zeros(28, 28)
            top, left = (int(v) for v in torch.randint(2, 16, (2,), generator=generator))
            if label == "squares":
                picture[top:top + 9, left:left + 9] = 1
            else:
                picture[top:top + 12, left:left + 3] = 1
            Image.fromarray((picture * 255).byte().numpy()).save(root / "pictures" / label / f"{n}.png")
    assert main(["scan", str(root / "pictures"), "--model", "fashion_cnn", "--layers", "relu1", "relu2",
                 "--out", str(root / "scan"), "--batch-size", "8", "-q"]) == 0
    return root / "scan"


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Calls(TorchDispatchMode):
    """Counts the operator calls for which ``counted(operator, arguments)`` holds."""

    def __init__(self, counted) -> None:
        super().__init__()
        self.counted, self.count = counted, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += bool(self.counted(func, args))
        return func(*args, **(kwargs or {}))


def test_files_follow_the_layout(model, scan, tmp_path) -> None:
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    out = make_atlas(model, ["relu2", "relu1"], tmp_path / "atlas", scan=scan, recipe=TINY, k=3, progress=False,
                     channels=list(range(32)))
    atlas = json.loads((out / "atlas.json").read_text())
    assert atlas["format"] == "convscope-atlas/1" and atlas["model"] == "fashion_cnn" and atlas["trained"] is True
    assert atlas["input_size"] == [1, 28, 28] and atlas["weights"] is None
    assert [layer["name"] for layer in atlas["layers"]] == ["relu1", "relu2"]  # the order the network runs them
    assert atlas["layers"][1] == {"name": "relu2", "channels": 64, "shape": [64, 14, 14], "selected": list(range(32))}
    assert atlas["scan"]["path"] == str(scan.resolve()) and len(atlas["scan"]["digest"]) == 16
    assert atlas["complete"] is False  # relu2: channels 0 … 31 of 64
    layer = json.loads((out / "layers/relu1/layer.json").read_text())
    assert sorted(layer["order"]) == list(range(32)) and layer["channels"] == 32 and layer["shape"] == [32, 28, 28]
    assert {"name", "channels", "shape", "dead", "order", "stats"} <= set(layer)
    assert not (out / "layers/relu2/layer.json").exists()
    for name, count in (("relu1", 32), ("relu2", 32)):
        for channel in range(count):
            record = json.loads((out / f"layers/{name}/channels/{channel}.json").read_text())
            assert record["layer"] == name and record["channel"] == channel
            assert set(record["stats"]) >= {"active_fraction", "mean", "max", "dead"}
            images = record["images"]
            assert len(images["facets"]) == 4
            assert all(len(images[key]) == 3 for key in ("top", "top_projections", "bottom", "bottom_projections"))
            paths = [images["vis"], images["negative"], *[p for key in ("facets", "top", "top_projections", "bottom",
                                                                        "bottom_projections") for p in images[key]]]
            for path in paths:
                assert path.startswith(f"layers/{name}/images/") and path.endswith(".png")
                assert Image.open(out / path).size[0] > 0
            assert record["top_classes"][0]["class"] in ("squares", "bars")
            assert record["top_values"] == sorted(record["top_values"], reverse=True)
            assert record["bottom_values"] == sorted(record["bottom_values"])
    first = json.loads((out / "layers/relu1/channels/0.json").read_text())
    assert len(first["drives"]) == 8 and {d["layer"] for d in first["drives"]} == {"relu2"} and not first["driven_by"]
    last = json.loads((out / "layers/relu2/channels/0.json").read_text())
    assert {d["layer"] for d in last["driven_by"]} == {"relu1"} and not last["drives"]
    assert (out / "index.html").is_file()
    assert all(torch.equal(before[k], v) for k, v in model.net.state_dict().items())
    assert not model.net.training and not model.net._forward_hooks and not model.net._forward_pre_hooks


def test_bottom_examples_are_the_lowest_pooled_features(model, scan, tmp_path) -> None:
    from convscope.atlas.channel_facts import channel_scores
    from convscope.atlas.examples import bottom_examples
    from convscope.scan import ScanResult

    result = ScanResult.load(scan)
    bottom = bottom_examples(result, model, "relu2", [5, 9], 4, "deconvnet")
    scores = channel_scores(result, "relu2")
    for row, channel in enumerate([5, 9]):
        lowest = torch.sort(scores[:, channel], stable=True)
        assert bottom.images[row].tolist() == lowest.indices[:4].tolist()
        assert torch.equal(bottom.values[row], lowest.values[:4])


def test_a_killed_run_resumes_without_redoing_channels(model, scan, tmp_path, monkeypatch) -> None:
    whole = make_atlas(model, ["relu1"], tmp_path / "whole", scan=scan, channels=list(range(6)), recipe=TINY, k=2,
                       batch_size=2, progress=False)
    made: list[int] = []
    original = build.visualise_channels

    def counted(*args, **kwargs):
        made.extend(args[2])
        return original(*args, **kwargs)

    def killed(out, layer, channel, *args):
        if channel == 3:
            raise KeyboardInterrupt  # as if killed between channels 2 and 3
        return write(out, layer, channel, *args)

    write = build._write_channel
    monkeypatch.setattr(build, "_write_channel", killed)
    with pytest.raises(KeyboardInterrupt):
        make_atlas(model, ["relu1"], tmp_path / "resumed", scan=scan, channels=list(range(6)), recipe=TINY, k=2,
                   batch_size=2, progress=False)
    assert sorted(p.name for p in (tmp_path / "resumed/layers/relu1/channels").glob("*.json")) == \
        ["0.json", "1.json", "2.json"]
    monkeypatch.setattr(build, "_write_channel", write)
    monkeypatch.setattr(build, "visualise_channels", counted)
    make_atlas(model, ["relu1"], tmp_path / "resumed", scan=scan, channels=list(range(6)), recipe=TINY, k=2,
               batch_size=4, progress=False)
    assert made == [3, 4, 5]  # the done channels were not made again
    done, again = files(whole), files(tmp_path / "resumed")
    assert done.keys() == again.keys()
    for name in done:
        if name.endswith(".png"):
            a, b = (np.asarray(Image.open(folder / name), dtype=int) for folder in (whole, tmp_path / "resumed"))
            assert np.abs(a - b).max() <= 1, name  # other batch sizes: equal up to float rounding
        elif name.endswith(".json") and "channels" in name:
            a, b = json.loads(done[name]), json.loads(again[name])
            assert a["images"] == b["images"] and a["top_pictures"] == b["top_pictures"]
            assert a["values"]["vis"] == pytest.approx(b["values"]["vis"], rel=1e-4, abs=1e-6)


def test_a_batch_gives_each_channel_its_own_pictures(model) -> None:
    fast = working_copy(model)
    recipe = Recipe(size=32, steps=8, seed=3)
    together = visualise_channels(fast, "relu2", [4, 0, 7], recipe, progress=False)
    for row, channel in enumerate([4, 0, 7]):
        alone = visualise_channels(fast, "relu2", [channel], recipe, progress=False)
        torch.testing.assert_close(together.positive[row], alone.positive[0], atol=2e-4, rtol=0)
        torch.testing.assert_close(together.negative[row], alone.negative[0], atol=2e-4, rtol=0)
        torch.testing.assert_close(together.facets[row], alone.facets[0], atol=2e-4, rtol=0)
    assert not torch.allclose(together.positive[0], together.positive[1], atol=1e-2)  # channels differ


def test_the_objective_pulls_each_picture_its_own_way() -> None:
    model = load_model("efficientnet_lite0")
    recipe = Recipe(size=48, steps=24, facets=2)
    made = visualise_channels(working_copy(model), "blocks.1", [3, 10], recipe, progress=False)
    assert (made.values[:, 0] > made.values[:, 1] + 1).all()  # the visualisation excites, the negative inhibits


def test_diversity_is_lucids_within_each_group() -> None:
    acts = torch.randn(8, 5, 3, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(group_similarity(acts, 4).double(), reference_similarity(acts, 4), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(group_similarity(acts, 2).double(), reference_similarity(acts, 2), atol=1e-5,
                               rtol=0)


def test_weight_links_are_the_gradient_links_of_a_direct_convolution() -> None:
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 4, 1))
    net.add_module("relu", nn.ReLU())
    net.add_module("conv2", nn.Conv2d(4, 5, 1))
    net.add_module("tail", nn.Flatten())
    tiny = Model(net, preprocess=Preprocess(resize=None, crop=8, mean=(0.0,) * 3, std=(1.0,) * 3), name="tiny")
    pictures = torch.rand(3, 3, 8, 8)
    found = links(tiny, "relu", "conv2", pictures)
    assert found.method == "weights"
    torch.testing.assert_close(found.strength, net.conv2.weight.detach()[:, :, 0, 0].T)
    torch.testing.assert_close(gradient_strength(tiny, "relu", "conv2", pictures), found.strength, atol=1e-5, rtol=0)
    assert links(tiny, "conv1", "conv2", pictures).method == "gradients"  # a ReLU lies between them


def test_similar_channels_are_put_side_by_side() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 40, generator=generator)
    def noise(scale: float) -> torch.Tensor:
        return scale * torch.randn(40, generator=generator)

    rows = torch.stack([a, b + noise(0.1), a + noise(0.1), b, a - noise(0.05), b * 2])
    order = similarity_order(rows)
    groups = ["a" if i in (0, 2, 4) else "b" for i in order]
    assert groups in (["a"] * 3 + ["b"] * 3, ["b"] * 3 + ["a"] * 3)


def test_refusals_leave_the_folder_as_it_was(model, scan, tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="unknown layer 'relu9'"):
        make_atlas(model, ["relu9"], out, recipe=TINY, progress=False)
    with pytest.raises(ValueError, match="recorded relu1, relu2, not relu3"):
        make_atlas(model, ["relu3"], out, scan=scan, recipe=TINY, progress=False)
    other = dataclasses.replace(model, net=copy.deepcopy(model.net))
    with torch.no_grad():
        other.net.conv1.bias += 1
    with pytest.raises(ValueError, match="was made with other weights"):
        make_atlas(other, ["relu1"], out, scan=scan, recipe=TINY, progress=False)
    with pytest.raises(ValueError, match="channel 40 does not exist"):
        make_atlas(model, ["relu1"], out, channels=[40], recipe=TINY, progress=False)
    class Inverting(nn.ReLU):  # an operation that has no bfloat16 version on the CPU
        def forward(self, x):
            return super().forward(x) @ torch.linalg.inv(torch.eye(x.shape[-1]).to(x))

    inverting = dataclasses.replace(model, net=copy.deepcopy(model.net))
    inverting.net.relu1 = Inverting()
    with pytest.raises(ValueError, match="cannot compute in bfloat16 on cpu .*use --precision float32"):
        make_atlas(inverting, ["relu2"], out, recipe=dataclasses.replace(TINY, precision="bfloat16"), progress=False)
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        make_atlas(model, ["relu1"], out, channels=[0], recipe=TINY, progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    first = make_atlas(model, ["relu1"], tmp_path / "atlas", channels=[0], recipe=TINY, progress=False)
    before = files(first)
    with pytest.raises(ValueError, match=r"holds another atlas \(settings\.steps: 4 there, 5 now\)"):
        make_atlas(model, ["relu1"], first, channels=[0], recipe=Recipe(size=32, steps=5), progress=False)
    assert files(first) == before
    make_atlas(model, ["relu1"], first, channels=[0], recipe=Recipe(size=32, steps=5), overwrite=True,
               progress=False)
    assert json.loads((first / "atlas.json").read_text())["settings"]["steps"] == 5


def test_the_command_refuses_in_one_line(scan, tmp_path, capsys) -> None:
    from cli_runs import assert_refused, run

    status, err = run(["atlas", "--layers", "relu3", "--scan", str(scan), "--out", str(tmp_path / "a")], capsys)
    assert_refused(status, err)
    assert "not relu3" in err and not (tmp_path / "a").exists()


def test_two_torchrun_processes_split_the_channels(tmp_path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    arguments = ["atlas", "--model", "fashion_cnn", "--layers", "relu1", "--channels", "0", "1", "2", "3", "4",
                 "--size", "32", "--steps", "4", "--batch-size", "2", "-q"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(port), "-m", "convscope", *arguments, "--out", str(tmp_path / "two")]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    from convscope.cli import main

    assert main([*arguments, "--out", str(tmp_path / "one")]) == 0
    two, one = files(tmp_path / "two"), files(tmp_path / "one")
    assert two.keys() == one.keys() and len([n for n in one if n.endswith(".json") and "channels" in n]) == 5
    for name in one:
        if name.endswith(".png"):
            a, b = (np.asarray(Image.open(folder / name), dtype=int) for folder in (tmp_path / "one", tmp_path / "two"))
            assert np.abs(a - b).max() <= 1, name


def test_the_working_copy_folds_the_norms_inside_a_chosen_block_but_keeps_a_chosen_norm() -> None:
    from convscope.synthesis.matching import layer_features

    lite0 = load_model("efficientnet_lite0")
    pictures = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for layer, left in (("blocks.2", []), ("blocks.2.1.bn2", ["2.1.bn2", "2.1.bn3"])):  # bn3: after the layer
        fast = working_copy(lite0, [layer])
        norms = [n for n, m in fast.net.blocks[:3].named_modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms == left  # folded up to the layer and inside it, except the chosen norm itself
        expected, found = (layer_features(m, pictures, [layer])[layer] for m in (lite0, fast))
        torch.testing.assert_close(found, expected, atol=1e-4 * float(expected.abs().max()), rtol=0)


def test_the_working_copy_leaves_others_hooks_behind(model) -> None:
    kept = {}

    def keep(module, inputs, output):  # what Lucent leaves on every module: its last output, not a leaf
        kept["output"] = output

    handle = model.net.conv1.register_forward_hook(keep)
    try:
        model.net(torch.rand(1, 1, 28, 28, requires_grad=True))
        fast = working_copy(model, ["relu2"])
        assert not fast.net.conv1._forward_hooks and len(model.net.conv1._forward_hooks) == 1
        assert fast.net.conv1.weight.data_ptr() != model.net.conv1.weight.data_ptr()
    finally:
        handle.remove()


def test_what_a_kill_leaves_is_cleaned_up_and_redone(model, tmp_path, monkeypatch) -> None:
    out = make_atlas(model, ["relu1"], tmp_path / "atlas", channels=[0, 1], recipe=TINY, progress=False)
    whole = (out / "layers/relu1/channels/1.json").read_text()
    (out / "layers/relu1/channels/1.json").write_text(whole[:40])  # as if the disk filled up mid-write
    stale = out / "layers/relu1/images/.1_vis.png.99999.tmp"
    stale.write_bytes(b"half a picture")
    made: list[int] = []
    original = build.visualise_channels
    monkeypatch.setattr(build, "visualise_channels", lambda *a, **k: (made.extend(a[2]), original(*a, **k))[1])
    make_atlas(model, ["relu1"], out, channels=[0, 1], recipe=TINY, progress=False)
    assert made == [1] and not stale.exists()
    assert json.loads((out / "layers/relu1/channels/1.json").read_text())["images"] == json.loads(whole)["images"]


def test_the_recipe_follows_the_models_input() -> None:
    assert recipe_for(3, 224) == Recipe()  # colour photos at 224 px (Lite0): Lucid's recipe, unchanged
    grey = recipe_for(1, 28)  # Fashion-MNIST
    assert (grey.size, grey.colours, grey.lr) == (28, 1, 0.2)
    assert grey.settings()["parameterisation"] == "fourier (one grey channel)"
    assert recipe_for(1, 28, size=64, steps=8).size == 64 and recipe_for(1, 28, size=None).size == 28
    assert (recipe_for(3, 32).size, recipe_for(3, 32).colours) == (32, 3) and recipe_for(1, 224).size == 128
    with pytest.raises(ValueError, match="colours is 3"):
        Recipe(colours=2)


def test_a_grey_model_gets_grey_pictures_of_its_size_in_which_its_channels_fire(model) -> None:
    """Fashion-MNIST's relu2 channels 1, 3 and 5 stay silent on what the colour recipe at 128 px makes in 64 steps
    (a flat grey picture, mean 0.0); at the model's 28 px with one grey channel they fire."""
    recipe = recipe_for(1, 28, steps=64, facets=0, negative=False)
    assert start_images("relu2", [1, 3, 5], recipe).spectrum.shape[:2] == (3, 1)  # one grey channel each
    pictures = visualise_channels(working_copy(model, ["relu2"]), "relu2", [1, 3, 5], recipe, progress=False)
    assert pictures.positive.shape == (3, 3, 28, 28)
    assert torch.equal(pictures.positive[:, 0], pictures.positive[:, 1])  # grey: the same in R, G and B
    assert (pictures.values[:, 0] > 0.2).all(), pictures.values


def test_the_atlas_of_a_grey_28_pixel_model_uses_its_recipe(model, tmp_path) -> None:
    out = make_atlas(model, ["relu1"], tmp_path / "atlas", channels=[0], progress=False)
    settings = json.loads((out / "atlas.json").read_text())["settings"]
    assert settings["size"] == 28 and settings["parameterisation"] == "fourier (one grey channel)"
    assert Image.open(out / "layers/relu1/images/0_vis.png").size == (28, 28)


def test_the_lean_layers_give_the_same_maps_and_gradients_without_copying_them() -> None:
    from convscope.atlas.lean_layers import SamePaddingConv, make_lean

    copying = (torch.ops.aten.clone.default, torch.ops.aten.constant_pad_nd.default)

    lite0 = load_model("efficientnet_lite0")
    original = copy.deepcopy(lite0.net.blocks[:3]).insert(0, copy.deepcopy(lite0.net.conv_stem)).eval()
    lean = copy.deepcopy(original)
    make_lean(lean)
    assert sum(isinstance(m, SamePaddingConv) for m in lean.modules()) == 3  # the stem, blocks.1.0, blocks.2.0
    for size in ((64, 64), (63, 63), (64, 61)):  # TensorFlow pads one more after than before on even sides
        results = []
        for net in (original, lean):
            picture = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0)).requires_grad_()
            # a map of the 2 pictures is copied or padded (a weight may be grown)
            with Calls(lambda func, args: func in copying and args[0].shape[0] == 2) as copies:
                output = net(picture)
                output.square().sum().backward()
            results.append((output.detach(), picture.grad, copies.count))
        (expected, expected_grad, copied), (found, found_grad, not_copied) = results
        assert copied > 0 and not_copied == 0
        torch.testing.assert_close(found, expected, atol=1e-6 * float(expected.abs().max()), rtol=0)
        torch.testing.assert_close(found_grad, expected_grad, atol=1e-6 * float(expected_grad.abs().max()), rtol=0)
    fast = working_copy(lite0, ["blocks.4"]).net
    assert not any(type(m).__name__ == "Conv2dSame" or getattr(m, "inplace", False) for m in fast.modules())


def test_bfloat16_pictures_climb_as_float32_ones_do_and_are_measured_in_float32() -> None:
    from convscope.atlas.precision import in_precision

    lite0 = load_model("efficientnet_lite0")
    fast = working_copy(lite0, ["blocks.2"])
    lowered = in_precision(fast, "bfloat16")
    assert in_precision(fast, "bfloat16") is lowered and in_precision(fast, "float32") is fast
    kept = {name for name, m in lowered.net.named_modules()
            if isinstance(m, nn.Conv2d) and m.weight.dtype == torch.float32}
    assert kept == {f"blocks.{b}.0.conv_dw" for b in (1, 2, 3, 5)}  # the strided depthwise ones, on the CPU
    assert all(p.dtype == torch.float32 for p in fast.net.parameters())  # the float32 copy is left as it was
    recipes = [Recipe(size=64, steps=12, facets=0, negative=False, precision=p) for p in ("float32", "bfloat16")]
    start = Recipe(size=64, steps=1, facets=0, negative=False)
    first, made32, made16 = (visualise_channels(fast, "blocks.2", [0, 5], r, progress=False)
                             for r in (start, *recipes))
    assert made16.values.dtype == torch.float32 and not torch.equal(made16.positive, made32.positive)
    assert (made16.values[:, 0] > first.values[:, 0] + 0.5 * (made32.values[:, 0] - first.values[:, 0])).all()
    torch.testing.assert_close(made16.values, made32.values, rtol=0.15, atol=0)
    assert recipes[1].settings()["precision"] == "bfloat16" and "precision" not in recipes[0].settings()
    with pytest.raises(ValueError, match="precision is one of float32, bfloat16"):
        Recipe(precision="float16")


def test_rectified_convolutions_give_the_separate_layers_maps_and_gradients_without_clamping_them(monkeypatch) -> None:
    import convscope.atlas.rectified_convs as rectified
    import convscope.atlas.working_copy as copies

    clamping = (torch.ops.aten.hardtanh.default, torch.ops.aten.clamp.default, torch.ops.aten.clamp_.default)

    def up_to_blocks_2(net: nn.Module) -> nn.Module:
        return nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:3])

    lite0 = load_model("efficientnet_lite0")
    merged = up_to_blocks_2(working_copy(lite0, ["blocks.2"]).net)
    with monkeypatch.context() as patched:
        patched.setattr(copies, "rectify_convs", lambda *args: [])
        separate = up_to_blocks_2(working_copy(lite0, ["blocks.2"]).net)
    # the stem, blocks.0's depthwise, and the expansion and depthwise convolutions of blocks 1 and 2 (inside the
    # chosen block too: its output stays the same)
    assert sum(isinstance(m, rectified.RectifiedConv) for m in merged.modules()) == 10
    assert not any(isinstance(m, rectified.RectifiedConv) for m in separate.modules())
    for fused in (True, False):  # oneDNN's convolution with its clamp, and the convolution then an in-place clamp
        patched_fusable = rectified._fusable if fused else (lambda *args: False)
        with monkeypatch.context() as patched:
            patched.setattr(rectified, "_fusable", patched_fusable)
            for size in ((64, 64), (63, 61)):
                results = []
                for net in (separate, merged):
                    picture = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0)).requires_grad_()
                    with Calls(lambda func, args: func in clamping) as clamps:
                        output = net(picture)
                    output.square().sum().backward()
                    results.append((output.detach(), picture.grad, clamps.count))
                (expected, expected_grad, clamped), (found, found_grad, merged_clamps) = results
                assert clamped == 10 and merged_clamps == (0 if fused else 10)
                assert torch.equal(found, expected) and torch.equal(found_grad, expected_grad)
                assert float((expected_grad != 0).float().mean()) > 0.5


def test_a_rectifier_that_is_chosen_or_whose_input_something_else_reads_is_left_as_it_is() -> None:
    from collections import OrderedDict

    from convscope.atlas.rectified_convs import RectifiedConv

    class ReadTwice(nn.Module):  # the convolution's output is read by the ReLU and by the sum
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.relu = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.relu(y) + y

    def merged(net: nn.Module, layer: str) -> set[str]:
        tiny = Model(net, preprocess=Preprocess(resize=None, crop=8, mean=(0.0,) * 3, std=(1.0,) * 3), name="tiny")
        fast = working_copy(tiny, [layer]).net
        picture = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(fast(picture), net(picture))
        return {name for name, m in fast.named_modules() if isinstance(m, RectifiedConv)}

    torch.manual_seed(0)
    chain = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3, padding=1), relu6=nn.ReLU6(),
                                      head=nn.Conv2d(4, 4, 1), relu=nn.ReLU()))
    assert merged(chain, "relu") == {"conv"}  # a chosen rectifier is optimised at its input: it stays
    assert merged(chain, "head") == {"conv"}
    assert merged(chain, "relu6") == set()
    twice = nn.Sequential(OrderedDict(block=ReadTwice(), conv=nn.Conv2d(3, 4, 3, padding=1), relu=nn.ReLU(),
                                      head=nn.Conv2d(4, 4, 1)))
    assert merged(twice, "head") == set()  # the merged copy's output differed: nothing is merged


def test_an_atlas_of_feature_visualisations_alone_from_the_command_line(tmp_path) -> None:
    from convscope.cli import main

    out = tmp_path / "atlas"
    assert main(["atlas", "--model", "fashion_cnn", "--layers", "relu1", "--channels", "0", "1", "--steps", "2",
                 "--facets", "0", "--no-negative", "--out", str(out), "-q"]) == 0
    settings = json.loads((out / "atlas.json").read_text())["settings"]
    assert (settings["negative"], settings["facets"]) == (False, 0)
    assert sorted(p.name for p in (out / "layers/relu1/images").iterdir()) == ["0_vis.png", "1_vis.png"]
    page = (out / "layers/relu1/channels/0.html").read_text()
    assert "what excites it most" in page and "negative" not in page
    assert "dead ones unknown (no scan)" in (out / "layers/relu1/index.html").read_text()  # not "0 dead"
    assert "<td>32</td><td>—</td>" in (out / "index.html").read_text()
