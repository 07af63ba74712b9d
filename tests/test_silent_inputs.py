"""Pictures, targets and outputs that used to give a wrong answer without a word: each now reads right or is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.data import ImageFolder
from convscope.images import load_image, load_image_bytes, load_sample, pil_to_picture

pytestmark = pytest.mark.usefixtures("one_thread")


def _upright() -> np.ndarray:
    return (load_sample("chelsea")[:, :40, :60].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def _as_picture(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1)


@pytest.mark.parametrize(("orientation", "stored"), [
    (6, Image.Transpose.ROTATE_90),    # shown after turning 90° clockwise: stored turned 90° anticlockwise
    (8, Image.Transpose.ROTATE_270),
    (3, Image.Transpose.ROTATE_180),
    (2, Image.Transpose.FLIP_LEFT_RIGHT),
])
def test_exif_orientation_is_applied_as_image_viewers_do(tmp_path, orientation, stored):
    upright = _upright()
    sideways = Image.fromarray(upright).transpose(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _png(sideways, exif=exif.tobytes())
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(data)
    expected = _as_picture(upright)
    assert torch.equal(load_image(tmp_path / "photos" / "cat.png"), expected)
    assert torch.equal(load_image_bytes(data, "cat.png"), expected)  # uploads to the explorer
    assert torch.equal(ImageFolder(tmp_path / "photos").picture(0), expected)  # scans and explain-set
    opened = Image.open(io.BytesIO(data))
    assert torch.equal(load_image(opened), expected)
    assert opened.size == sideways.size  # the caller's image is left as it was


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int16])
def test_thirty_two_bit_and_signed_integer_files_are_refused_not_rescaled(tmp_path, dtype):
    import tifffile

    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.full((8, 8), 200, dtype))  # 0–255 values in a 32-bit integer file
    with pytest.raises(TypeError, match=r"values 200 to 200\).*ambiguous.*8-bit, 16-bit unsigned"):
        load_image(path)


def test_sixteen_bit_unsigned_tiffs_are_still_divided_by_65535(tmp_path):
    import tifffile

    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.full((8, 8), 13107, np.uint16))
    torch.testing.assert_close(load_image(path), torch.full((3, 8, 8), 0.2))


def _composited(rgba: np.ndarray) -> torch.Tensor:
    """An RGBA array [H,W,4] composited on white, computed here from the array (the reference)."""
    values = rgba.astype(np.float32) / 255
    return torch.from_numpy(values[..., :3] * values[..., 3:] + (1 - values[..., 3:])).permute(2, 0, 1)


def test_palette_pictures_read_through_their_palette_with_transparency_as_alpha():
    photo = Image.fromarray(_upright())
    palette = photo.quantize(32)
    colours = np.asarray(palette.getpalette()[:96], np.uint8).reshape(32, 3)
    indices = np.asarray(palette)
    plain = pil_to_picture(Image.open(io.BytesIO(_png(palette))))
    assert torch.equal(plain, _as_picture(colours[indices]))
    keyed = pil_to_picture(Image.open(io.BytesIO(_png(palette, transparency=0))))  # index 0 is transparent
    white = torch.ones(3)
    assert torch.equal(keyed[:, torch.from_numpy(indices == 0)], white[:, None].expand(3, int((indices == 0).sum())))
    assert torch.equal(keyed[:, torch.from_numpy(indices != 0)], plain[:, torch.from_numpy(indices != 0)])
    with_alpha = palette.convert("PA")
    assert torch.equal(pil_to_picture(with_alpha), plain)


def test_greyscale_with_a_transparent_value_is_transparent_like_every_other_mode():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    picture = pil_to_picture(Image.open(io.BytesIO(_png(Image.fromarray(grey), transparency=100))))
    rgba = np.stack([grey, grey, grey, np.where(grey == 100, 0, 255).astype(np.uint8)], -1)
    assert torch.equal(picture, _composited(rgba))
    assert bool((picture[:, grey == 100] == 1).all())  # white, not the grey 100/255


@pytest.mark.parametrize("mode", ["LA", "La", "CMYK", "1", "YCbCr", "RGBa"])
def test_other_modes_read_as_pillow_converts_them_to_rgb(mode):
    photo = Image.fromarray(_upright())
    image = photo.convert(mode) if mode != "La" else photo.convert("LA").convert("La")
    rgba = np.asarray(image.convert("LA").convert("RGBA") if mode == "La" else image.convert("RGBA"))
    torch.testing.assert_close(pil_to_picture(image), _composited(rgba), atol=1 / 255, rtol=0)


def _small_net(outputs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, outputs)).eval()


def _plain(net: torch.nn.Module, output: str):
    from convscope.models import Model, Preprocess

    return Model(net, preprocess=Preprocess(resize=None, crop=8, mean=(0,) * 3, std=(1,) * 3), output=output)


@pytest.mark.parametrize(("output", "read"), [("multilabel", torch.sigmoid), ("regression", lambda z: z)])
def test_a_user_built_class_probability_reads_the_output_as_the_model_says(output, read):
    from captum.attr import LayerGradCam

    from convscope import ClassProbability, GradCAM

    model = _plain(_small_net(4), output)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = GradCAM(model, layer="2")(x, ClassProbability(1))

    class Read(torch.nn.Module):  # the documented reading, applied outside convscope
        def __init__(self) -> None:
            super().__init__()
            self.net = model.net

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return read(self.net(inputs))

    reference = Read()
    theirs = LayerGradCam(reference, reference.net[2]).attribute(x.clone(), target=1)
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-6 * float(theirs.detach().abs().max()), rtol=1e-4)


def test_a_user_built_top_class_on_a_regression_model_is_refused():
    from convscope import Saliency, TopClass

    model = _plain(_small_net(4), "regression")
    with pytest.raises(ValueError, match="regression output has 4 values and no top class"):
        Saliency(model)(torch.rand(1, 3, 8, 8), TopClass())


def test_a_target_whose_kind_contradicts_the_model_is_refused():
    from convscope import ClassScore, Saliency

    with pytest.raises(ValueError, match="reads the output as classes but the model's output is multilabel"):
        Saliency(_plain(_small_net(4), "multilabel"))(torch.rand(1, 3, 8, 8), ClassScore(0, "classes"))


def test_a_region_target_on_a_classifier_is_refused_not_read_over_the_whole_picture():
    from convscope import Saliency
    from convscope.targets import parse_target

    model = _plain(_small_net(4), "classes")
    target = parse_target("region:2:0,0,4,4", model)
    with pytest.raises(ValueError, match="region .* segmentation output.*this model's output is classes"):
        Saliency(model)(torch.rand(1, 3, 8, 8), target)


NETS = '''
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self, nan=False):
        super().__init__()
        self.nan = nan
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight[1] = -1.0  # channel 1 is below zero on every picture: a dead filter
            self.conv.bias[1] = -1000.0

    def forward(self, x):
        out = self.fc(self.pool(self.relu(self.conv(x))).flatten(1))
        return out * float("nan") if self.nan else out


def nan():
    return Small(nan=True).eval()


def dead():
    torch.manual_seed(0)
    return Small().eval()
'''


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from convscope.cli import main

    try:
        status = main(argv)
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("extra", [["--layer", "conv"], [], ["--method", "saliency"], ["--method", "occlusion"]])
def test_a_model_with_nan_outputs_is_one_line_not_nan_maps_or_a_traceback(tmp_path, capsys, extra):
    (tmp_path / "nets.py").write_text(NETS)
    status, _, err = _cli(["explain", "sample:chelsea", "--model", f"{tmp_path / 'nets.py'}:nan", *extra,
                           "--out", str(tmp_path / "out")], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "gives NaN or infinite outputs (3 of 3 values)" in lines[0]
    assert not (tmp_path / "out").exists()


def test_predict_on_nan_outputs_is_refused_not_nan_percent():
    from convscope import predict
    from convscope.models import Model

    namespace: dict = {}
    exec(NETS, namespace)
    with pytest.raises(ValueError, match="NaN or infinite outputs"):
        predict(Model(namespace["nan"]()), [torch.rand(3, 32, 32)])


def test_a_map_that_is_zero_everywhere_is_said_on_the_terminal_and_in_the_figure(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(NETS)
    status, out, err = _cli(["explain", "sample:chelsea", "--model", f"{tmp_path / 'nets.py'}:dead", "--layer", "conv",
                             "--target", "channel:relu:1", "--out", str(tmp_path / "out")], capsys)
    assert status in (0, None), err
    assert "Grad-CAM at conv for channel 1 of relu: the map is zero everywhere" in err
    from convscope.attribution import explain
    from convscope.models import Model, Preprocess
    from convscope.targets import Channel

    namespace: dict = {}
    exec(NETS, namespace)
    model = Model(namespace["dead"](), preprocess=Preprocess(resize=None, crop=32))
    found = explain(model, torch.rand(3, 32, 32), "grad_cam", Channel("relu", 1), layer="conv")
    assert not bool(found.maps.any()) and found.blank == ["map is zero everywhere"]
    plain = explain(model, torch.rand(3, 32, 32), "grad_cam", Channel("relu", 0), layer="conv")
    assert plain.blank == [None]
    # the blank map's picture carries a line of text above it; a map that shows something does not
    assert found.map_picture().size[1] > plain.map_picture().size[1] == 32


@pytest.mark.parametrize("method", ["saliency", "grad_cam", "occlusion", "integrated_gradients", "guided_backprop"])
def test_float64_and_float16_batches_run_in_the_model_s_type_and_give_its_maps(method):
    from convscope.attribution import METHODS

    model = _plain(_small_net(3), "classes")
    options = {"layer": "2"} if method == "grad_cam" else {"size": 4, "stride": 2} if method == "occlusion" else {}
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    expected = METHODS[method](model, **options)(x, 1)
    torch.testing.assert_close(METHODS[method](model, **options)(x.double(), 1), expected)
    half = x.half()
    torch.testing.assert_close(METHODS[method](model, **options)(half, 1),
                               METHODS[method](model, **options)(half.float(), 1))


def test_a_float64_model_explains_and_predicts_like_its_float32_copy():
    import copy

    from convscope import GradCAM, gradient_pass, predict

    model = _plain(_small_net(3), "classes")
    wide = _plain(copy.deepcopy(model.net).double(), "classes")
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    assert wide.prepare(list(x)).dtype == torch.float64
    torch.testing.assert_close(GradCAM(wide, "2")(x, 0).float(), GradCAM(model, "2")(x, 0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gradient_pass(wide, x, 0).input_grad.float(), gradient_pass(model, x, 0).input_grad,
                               rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(predict(wide, list(x)).probabilities.float(), predict(model, list(x)).probabilities)


def test_a_target_callable_that_ignores_the_output_is_refused_in_one_line():
    from convscope import Saliency

    model = _plain(_small_net(3), "classes")
    with pytest.raises(ValueError, match="does not depend on the model's output.*lambda output: output"):
        Saliency(model)(torch.rand(1, 3, 8, 8), lambda output: torch.ones(output.shape[0]))


RAISING = '''
from torch import nn


class Buggy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))  # 4 features into a layer that reads 5


def buggy():
    return Buggy().eval()


def broken():
    raise RuntimeError("cannot find my weights")
'''


@pytest.mark.parametrize(("factory", "words"), [
    ("buggy", r"the model's own code raised RuntimeError at raising\.py:12: mat1 and mat2 shapes cannot be multiplied"),
    ("broken", r"raising\.py:broken\(\) raised RuntimeError: cannot find my weights"),
])
@pytest.mark.parametrize("command", [["predict"], ["explain", "--layer", "conv"]])
def test_a_model_file_whose_code_raises_is_one_line_naming_it(tmp_path, capsys, factory, words, command):
    import re

    (tmp_path / "raising.py").write_text(RAISING)
    out = ["--out", str(tmp_path / "out")] if command[0] == "explain" else []
    status, _, err = _cli([command[0], "sample:chelsea", "--model", f"{tmp_path / 'raising.py'}:{factory}",
                           *command[1:], *out], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(words, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_convscope_s_own_errors_inside_a_model_s_forward_are_not_blamed_on_the_model(tmp_path):
    from convscope.cli.errors import user_code_errors
    from convscope.models.files import load_network

    (tmp_path / "raising.py").write_text(RAISING.replace("nn.Linear(5, 3)", "nn.Linear(4, 3)"))
    net = load_network(f"{tmp_path / 'raising.py'}:buggy")

    namespace = {"__name__": "convscope.a_module"}  # a hook of convscope's, run from inside the model's forward
    exec("def hook(module, args, output):\n    raise IndexError('a bug in a hook')", namespace)
    net.conv.register_forward_hook(namespace["hook"])
    with pytest.raises(IndexError, match="a bug in a hook"), user_code_errors():
        net(torch.rand(1, 3, 8, 8))


def test_explain_set_on_idx_labels_outside_the_ten_classes_is_one_line(tmp_path, capsys):
    import gzip

    from test_scan_data import idx_bytes, write_fake_fashion

    write_fake_fashion(tmp_path / "fashion")
    labels = np.array([0, 1, 12, 3])  # 12: no such class
    (tmp_path / "fashion" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    status, _, err = _cli(["explain-set", f"{tmp_path / 'fashion'}:test", "--model", "fashion_cnn",
                           "--out", str(tmp_path / "out")], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "1 values outside 0–9 (picture 2 is labelled 12)" in lines[0]


class _RowLSTM(torch.nn.Module):
    """An LSTM reading a picture row by row (an optional convolution first): its steps are not positions."""

    def __init__(self, conv: bool = False, every_step: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1) if conv else torch.nn.Identity()
        self.lstm = torch.nn.LSTM(28, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, 10)
        self.every_step = every_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, _ = self.lstm(self.conv(x)[:, 0])
        return self.fc(steps).mean(1) if self.every_step else self.fc(steps[:, -1])


@pytest.mark.parametrize("layer", ["lstm", "fc", None])
def test_an_lstm_over_picture_rows_gets_no_grad_cam_map(layer):
    from convscope import GradCAM
    from convscope.models import Model, Preprocess

    model = Model(_RowLSTM().eval(), preprocess=Preprocess(resize=None, crop=28, mean=(0.5,), std=(0.5,), channels=1))
    x = torch.rand(1, 1, 30, 28)  # 30 rows: 30 steps would tile a 6×5 grid at stride 5
    words = "no layer .* before its recurrent layer" if layer is None else \
        f"layer '{layer}' (is|comes after) a recurrent layer \\(lstm\\): its output is a sequence of steps"
    with pytest.raises(ValueError, match=words):
        GradCAM(model, layer=layer)(x, 3)


def test_layers_before_a_recurrent_layer_still_get_maps():
    from convscope import GradCAM
    from convscope.models import Model, Preprocess

    model = Model(_RowLSTM(conv=True).eval(),
                  preprocess=Preprocess(resize=None, crop=28, mean=(0.5,), std=(0.5,), channels=1))
    x = torch.rand(1, 1, 28, 28)
    assert GradCAM(model)(x, 3).shape == (1, 1, 28, 28)
    assert GradCAM(model, layer="conv")(x, 3).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="layers that would work: conv"):
        GradCAM(model, layer="lstm")(x, 3)


def test_explain_set_reads_a_multi_label_model_s_probabilities_by_sigmoid(tmp_path):
    from convscope.attribution.dataset import explain_set, load_chunks
    from convscope.data import TensorPictures

    model = _plain(_small_net(4), "multilabel")
    pictures = TensorPictures(torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(4)))
    explain_set(model, pictures, tmp_path, "saliency", batch_size=3, progress=False)
    chunks = load_chunks(tmp_path)
    logits = model.net(torch.stack([pictures.picture(i) for i in range(6)])).detach()
    classes = torch.cat([c["classes"] for c in chunks])
    expected = torch.sigmoid(logits).gather(1, classes[:, None])[:, 0]
    torch.testing.assert_close(torch.cat([c["probabilities"] for c in chunks]), expected)
