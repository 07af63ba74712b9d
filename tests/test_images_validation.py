"""Pictures are checked once where they come in: scaled by their type, refused when empty, broken or absurd."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.images import load_image, load_image_bytes
from convscope.models import Preprocess
from convscope.picture_checks import MAX_ASPECT, check_picture


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only its header: enough for a size check, which must come before any decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_sixteen_bit_pictures_are_scaled_by_65535_not_by_their_content(tmp_path):
    dark = np.full((4, 4), 1000, np.uint16)  # 1.5 % grey: must stay dark
    path = tmp_path / "dark16.png"
    Image.fromarray(dark).save(path)
    assert load_image(path).max().item() == pytest.approx(1000 / 65535)
    assert load_image(dark).max().item() == pytest.approx(1000 / 65535)
    assert load_image(np.full((2, 2), 200, np.uint8)).max().item() == pytest.approx(200 / 255)
    assert load_image(np.full((2, 2), 1000, ">u2")).max().item() == pytest.approx(1000 / 65535)  # big-endian
    assert load_image(np.full((2, 2), 0.25, ">f4")).max().item() == 0.25


def test_uint8_tensors_are_scaled_like_uint8_arrays():
    array = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    from_array = load_image(array)
    from_tensor = load_image(torch.from_numpy(array).permute(2, 0, 1).contiguous())
    torch.testing.assert_close(from_tensor, from_array)
    fitted = Preprocess(resize=None, crop=None).fit(torch.full((3, 2, 2), 255, dtype=torch.uint8))
    assert fitted.max().item() == 1.0


@pytest.mark.parametrize(("values", "words"), [
    (torch.full((3, 4, 4), float("nan")), "NaN"),
    (torch.full((3, 4, 4), float("inf")), "NaN or infinite"),
    (torch.full((3, 4, 4), -0.5), "outside \\[0, 1\\].*undo the normalisation"),
    (torch.full((3, 4, 4), 200.0), "outside \\[0, 1\\].*divide 0–255 values by 255"),
])
def test_broken_float_pictures_are_refused_saying_why(values, words):
    with pytest.raises(ValueError, match=words):
        load_image(values)
    with pytest.raises(ValueError, match=words):
        Preprocess()(values)  # the library's entry: every technique prepares pictures this way
    with pytest.raises(ValueError, match=words):
        load_image(values.permute(1, 2, 0).numpy())


def test_interpolation_overshoot_is_clamped_not_refused():
    picture = torch.full((3, 4, 4), 1.0005)
    assert check_picture(picture).max().item() == 1.0


def test_ambiguous_integer_types_are_refused():
    with pytest.raises(TypeError, match="int64.*uint8"):
        load_image(torch.zeros(3, 4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="int32"):
        load_image(np.zeros((4, 4, 3), np.int32))


@pytest.mark.parametrize("shape", [(3, 0, 0), (3, 0, 5), (1, 7, 0)])
def test_empty_pictures_are_refused(shape):
    with pytest.raises(ValueError, match="empty"):
        load_image(torch.zeros(shape))
    with pytest.raises(ValueError, match="empty"):
        Preprocess()(torch.zeros(shape))


def test_extreme_side_ratios_are_refused_before_any_resize(tmp_path):
    strip = torch.zeros(3, 1, 8000)
    with pytest.raises(ValueError, match="side ratio of 8000:1"):
        Preprocess()(strip)
    path = tmp_path / "strip.png"
    Image.new("L", (5000, 2)).save(path)
    with pytest.raises(ValueError, match="strip.png.*5000×2.*crop it first"):
        load_image(path)
    fine = torch.zeros(3, 8, 8 * MAX_ASPECT)
    assert Preprocess()(fine).shape == (1, 3, 224, 224)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    bomb = Image.new("1", (20000, 20000))
    data = _png_bytes(bomb)
    assert len(data) < 100_000  # 400 megapixels in a few tens of kilobytes
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="bomb.png.*(decompression bomb|megapixels)"):
        load_image(path)
    with pytest.raises(ValueError, match="upload.png"):
        load_image_bytes(data, "upload.png")
    medium = png_header(9000, 9000)  # over convscope's cap, under Pillow's error threshold
    with pytest.raises(ValueError, match="81 megapixels"):
        load_image_bytes(medium, "medium.png")


def test_uploads_get_the_same_checks_as_files():
    with pytest.raises(ValueError, match="empty"):
        load_image_bytes(b"", "nothing.png")
    with pytest.raises(ValueError, match="cannot read 'junk.png'"):
        load_image_bytes(b"not a picture", "junk.png")
    dark = _png_bytes(Image.fromarray(np.full((3, 3), 1000, np.uint16)))
    assert load_image_bytes(dark, "dark.png").max().item() == pytest.approx(1000 / 65535)
    with pytest.raises(ValueError, match="megapixels allowed"):
        load_image_bytes(_png_bytes(Image.new("RGB", (100, 100))), "big.png", max_pixels=5000)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "picture.png"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        load_image(fifo)  # opening it would block for ever
    with pytest.raises(ValueError, match="not a regular file"):
        load_image("/dev/null")


def test_a_greyscale_picture_is_converted_for_a_colour_model():
    grey = torch.rand(1, 10, 10)
    batch = Preprocess(resize=None, crop=None, mean=(0, 0, 0), std=(1, 1, 1))(grey)
    assert batch.shape == (1, 3, 10, 10)
    torch.testing.assert_close(batch[0, 0], grey[0])
    torch.testing.assert_close(batch[0, 2], grey[0])


def test_an_empty_name_is_not_the_current_folder():
    from convscope.images import load_images

    with pytest.raises(ValueError, match="empty"):
        load_images([""])


def test_library_entry_points_refuse_what_the_command_line_refuses(tiny_model, tmp_path):
    from torch import nn

    from convscope.inspection import predict
    from convscope.models import load_model
    from convscope.synthesis import class_model, dream

    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        predict(tiny_model, torch.rand(3, 8, 8), k=0)
    with pytest.raises(ValueError, match="size must be at least 8"):
        class_model(tiny_model, 0, size=0)
    with pytest.raises(ValueError, match="size must be at least 8"):
        dream(tiny_model, torch.rand(3, 16, 16), "conv", size=-1)
    torch.save({"weight": torch.zeros(5, 2), "bias": torch.zeros(5)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit Linear"):
        load_model(nn.Linear(2, 3), weights=tmp_path / "wrong.pth", device="cpu")
    torch.save({"weight": torch.full((3, 2), float("nan")), "bias": torch.zeros(3)}, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match="NaN or infinite values in 1 tensor\\(s\\) \\(weight\\)"):
        load_model(nn.Linear(2, 3), weights=tmp_path / "nan.pth", device="cpu")


def test_attribution_refuses_wrong_channels_nan_and_too_small_inputs(tiny_model):
    from convscope.attribution import GradCAM, Saliency

    with pytest.raises(ValueError, match="inputs have 1 channel\\(s\\) but tiny reads 3"):
        Saliency(tiny_model)(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        Saliency(tiny_model)(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="Grad-CAM at pool needs inputs of at least 4×4 pixels.*got 3×6"):
        GradCAM(tiny_model, layer="pool")(torch.rand(1, 3, 3, 6))
    assert GradCAM(tiny_model, layer="pool")(torch.rand(1, 3, 8, 8)).shape == (1, 1, 4, 4)


def test_cam_refuses_inputs_too_small_for_its_map():
    from torch import nn

    from convscope.attribution import CAM
    from convscope.models import Model, Preprocess

    strided = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(4, 2)).eval()
    model = Model(strided, preprocess=Preprocess(resize=None, crop=16, mean=(0,) * 3, std=(1,) * 3))
    with pytest.raises(ValueError, match=r"CAM at \d needs inputs of at least 8×8 pixels.*got 5×16"):
        CAM(model)(torch.rand(1, 3, 5, 16))  # a 2×4 map, its first row made of padding
    assert CAM(model)(torch.rand(1, 3, 8, 8)).shape == (1, 1, 2, 2)


def test_a_module_with_nan_parameters_is_refused():
    from torch import nn

    from convscope.models import load_model

    net = nn.Linear(2, 3)
    with torch.no_grad():
        net.bias[1] = float("nan")
    with pytest.raises(ValueError, match="bias hold NaN"):
        load_model(net, device="cpu")
