"""Parameterisations, transforms and between-step rules."""

from __future__ import annotations

import pytest
import torch

from convscope.synthesis import params as P
from convscope.synthesis import transforms as T
from convscope.synthesis.regularisers import Blur, ClipContribution, ClipNorm, Decay, gaussian_blur


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pixels_and_fourier_are_seeded_pictures_in_range():
    a, b = P.pixels((5, 7), 2, generator=seeded()), P.pixels((5, 7), 2, generator=seeded())
    assert a().shape == (2, 3, 5, 7) and torch.equal(a(), b())
    f = P.fourier((6, 9), 2, generator=seeded())
    image = f()
    assert image.shape == (2, 3, 6, 9) and 0 < image.min() and image.max() < 1
    assert torch.equal(image, P.fourier((6, 9), 2, generator=seeded())())
    assert not torch.equal(image, P.fourier((6, 9), 2, generator=seeded(1))())


def test_fourier_constant_spectrum_gives_the_expected_flat_picture():
    f = P.fourier((4, 4), decorrelate=False)
    with torch.no_grad():
        f.spectrum.zero_()
        f.spectrum[0, :, 0, 0, 0] = torch.tensor([1.0, 0.0, -1.0])
    # DC amplitude 1/f floored at 1/4 → ×4; orthonormal inverse FFT of one DC value c → c/√16 everywhere; /4
    expected = torch.sigmoid(torch.tensor([1.0, 0.0, -1.0]) * 4 / 4 / 4)
    assert torch.allclose(f()[0, :, 2, 3], expected)
    assert torch.allclose(P.spectrum_scale(4, 4, 1.0, torch.device("cpu"))[0, 0], torch.tensor(4.0))


def test_decorrelation_mixes_colours_with_unit_maximum_column():
    raw = torch.zeros(1, 3, 1, 1)
    raw[0, 0] = 1.0
    matrix = torch.tensor(P.COLOUR_CORRELATION_SQRT)
    column = matrix[:, 0] / matrix.norm(dim=0).max()
    assert torch.allclose(P.colour_image(raw, True)[0, :, 0, 0], torch.sigmoid(column))


def test_perturbation_stays_in_its_ball_and_in_range():
    start = torch.rand(2, 3, 4, 4, generator=seeded())
    linf = P.perturbed(start, 0.1, random_start=True, generator=seeded())
    with torch.no_grad():
        linf.delta.add_(torch.randn(linf.delta.shape, generator=seeded(2)))
    linf.constrain_()
    assert linf.delta.abs().max() <= 0.1 + 1e-7
    assert linf().min() >= 0 and linf().max() <= 1
    l2 = P.perturbed(start, 0.5, norm="l2")
    with torch.no_grad():
        l2.delta.copy_(torch.full_like(start, 0.3) * torch.sign(0.5 - start))
    l2.constrain_()
    assert (l2.delta.flatten(1).norm(dim=1) <= 0.5 + 1e-6).all()
    with pytest.raises(ValueError, match="norm"):
        P.perturbed(start, 0.1, norm="l1")


def test_from_image_starts_at_the_pictures_and_checks_shapes():
    picture = torch.rand(3, 4, 5)
    assert torch.equal(P.from_image(picture)()[0], picture)
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        P.from_image(torch.rand(4, 4))
    with pytest.raises(TypeError, match="load_image"):
        P.from_image([[0.5]])


def test_transforms_change_size_as_documented_and_repeat_with_the_seed():
    images = torch.rand(2, 3, 20, 20, generator=seeded())
    assert T.Pad(3)(images, seeded()).shape[-2:] == (26, 26)
    assert T.Jitter(4)(images, seeded()).shape[-2:] == (16, 16)
    assert T.Roll(3)(images, seeded()).shape == images.shape
    assert T.RandomScale((2.0,))(images, seeded()).shape[-2:] == (40, 40)
    standard = T.standard()
    assert torch.equal(standard(images, seeded(5)), standard(images, seeded(5)))
    with pytest.raises(ValueError, match="does not fit"):
        T.Jitter(30)(images, seeded())
    with pytest.raises(TypeError, match="Transform"):
        T.compose([lambda x, g: x])


def test_rotation_by_a_right_angle_matches_rot90_and_roll_is_circular():
    images = torch.rand(1, 3, 6, 6, generator=seeded())
    rotated = T.RandomRotate((90.0,))(images, seeded())
    assert torch.allclose(rotated, torch.rot90(images, k=1, dims=(-2, -1)), atol=1e-5) or \
        torch.allclose(rotated, torch.rot90(images, k=-1, dims=(-2, -1)), atol=1e-5)
    rolled = T.Roll(2)(images, seeded(3))
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
              if torch.equal(rolled, torch.roll(images, (dy, dx), (-2, -1)))]
    assert len(shifts) == 1


def test_gaussian_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter

    images = torch.rand(1, 2, 9, 11, generator=seeded(), dtype=torch.float64)
    ours = gaussian_blur(images, 1.2)
    radius = int(3 * 1.2 + 0.5)
    theirs = torch.stack([torch.from_numpy(gaussian_filter(images[0, c].numpy(), 1.2, mode="nearest",
                                                           truncate=radius / 1.2)) for c in range(2)])
    assert torch.allclose(ours[0], theirs, atol=1e-10)


def test_step_rules_change_pixels_as_documented():
    centre = torch.full((1, 3, 1, 1), 0.5)
    pixels = torch.full((1, 3, 2, 2), 0.5)
    pixels[0, :, 0, 0] = torch.tensor([0.9, 0.5, 0.5])     # far from grey
    pixels[0, :, 1, 1] = torch.tensor([0.52, 0.5, 0.5])    # close to grey
    clipped = pixels.clone()
    ClipNorm(80)(clipped, None, centre, 0)
    assert clipped[0, 0, 0, 0] == pytest.approx(0.9) and clipped[0, 0, 1, 1] == 0.5
    decayed = pixels.clone()
    Decay(0.5)(decayed, None, centre, 0)
    assert decayed[0, 0, 0, 0] == pytest.approx(0.7)
    grad = torch.zeros_like(pixels)
    grad[0, 0, 1, 1] = 10.0                                 # small change, large gradient: kept
    kept = pixels.clone()
    ClipContribution(80)(kept, grad, centre, 0)
    assert kept[0, 0, 1, 1] == pytest.approx(0.52) and kept[0, 0, 0, 0] == 0.5
    flat = torch.full((1, 3, 5, 5), 0.3)
    Blur(1.0, every=2)(flat, None, centre, 1)
    assert torch.allclose(flat, torch.full_like(flat, 0.3))
    with pytest.raises(ValueError, match="sigma"):
        Blur(0.0)


def test_fourier_image_matches_lucent_for_the_same_spectrum():
    spatial = pytest.importorskip("lucent.optvis.param.spatial")
    colour = pytest.importorskip("lucent.optvis.param.color")
    ours = P.fourier((8, 12), 2, sd=0.5, generator=seeded())
    tensors, image_f = spatial.fft_image((2, 3, 8, 12), sd=0.5)
    with torch.no_grad():
        tensors[0].copy_(ours.spectrum)
    theirs = colour.to_valid_rgb(image_f, decorrelate=True)()
    assert torch.allclose(ours(), theirs.cpu(), atol=1e-6)
