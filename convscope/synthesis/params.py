"""Parameterisations: how the optimised tensors become pictures ``[B,3,H,W]`` in [0, 1].

- :func:`pixels` — one free value per pixel and colour (clamped to [0, 1] after each step);
- :func:`fourier` — a scaled Fourier spectrum with decorrelated colours and a sigmoid
  (Olah et al., https://distill.pub/2017/feature-visualization/#preconditioning): gradient
  steps then change low frequencies as readily as high ones, which keeps images free of noise;
- :func:`from_image` — pixels that start at given pictures;
- :func:`perturbed` — given pictures plus a change kept inside an L∞ or L2 ball (attacks).
"""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.synthesis.sizes import check_picture_memory

# Square root of the colour covariance of ImageNet photos (an SVD of its Cholesky factor),
# columns scaled to unit maximum norm below: mixes independent components into correlated RGB.
COLOUR_CORRELATION_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))


class ImageParam:
    """Trainable tensors and the function that makes pictures of them."""

    pixels: Tensor | None = None

    def parameters(self) -> list[Tensor]:
        raise NotImplementedError

    def __call__(self) -> Tensor:
        raise NotImplementedError

    def constrain_(self) -> None:
        """Bring the tensors back into their allowed set after an optimiser step."""

    def to(self, device: torch.device) -> ImageParam:
        raise NotImplementedError


class PixelImage(ImageParam):
    """Free pixels in [0, 1]; :attr:`pixels` is the trainable leaf ``[B,3,H,W]``."""

    def __init__(self, start: Tensor) -> None:
        self.pixels: Tensor = start.detach().clone().float().clamp(0, 1).requires_grad_(True)

    def parameters(self) -> list[Tensor]:
        return [self.pixels]

    def __call__(self) -> Tensor:
        return self.pixels

    def constrain_(self) -> None:
        with torch.no_grad():
            self.pixels.clamp_(0, 1)

    def to(self, device: torch.device) -> PixelImage:
        if self.pixels.device != torch.device(device):
            self.pixels = self.pixels.detach().to(device).requires_grad_(True)
        return self


class FourierImage(ImageParam):
    """A spectrum ``[B,3,H,W//2+1]`` (complex, stored as real pairs) scaled by 1/frequency^decay."""

    def __init__(self, spectrum: Tensor, height: int, width: int, decay_power: float, decorrelate: bool) -> None:
        self.spectrum = spectrum.detach().clone().requires_grad_(True)
        self.height, self.width = height, width
        self.decay_power, self.decorrelate = decay_power, decorrelate
        self._scale: Tensor | None = None

    def parameters(self) -> list[Tensor]:
        return [self.spectrum]

    def __call__(self) -> Tensor:
        if self._scale is None or self._scale.device != self.spectrum.device:
            self._scale = spectrum_scale(self.height, self.width, self.decay_power, self.spectrum.device)
        spectrum = torch.view_as_complex(self.spectrum) * self._scale
        image = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho") / 4
        return colour_image(image, self.decorrelate)

    def to(self, device: torch.device) -> FourierImage:
        if self.spectrum.device != torch.device(device):
            self.spectrum = self.spectrum.detach().to(device).requires_grad_(True)
        return self


class PerturbedImage(ImageParam):
    """``clamp(start + δ, 0, 1)`` with δ kept in an ``epsilon`` ball (``'linf'`` or ``'l2'``, per image)."""

    def __init__(self, start: Tensor, epsilon: float, norm: str, delta: Tensor) -> None:
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm is 'linf' or 'l2', got {norm!r}")
        if epsilon < 0:
            raise ValueError(f"epsilon must be ≥ 0, got {epsilon}")
        self.start = start.detach().float()
        self.epsilon, self.norm = float(epsilon), norm
        self.delta = delta.detach().clone().float().requires_grad_(True)
        self.constrain_()

    def parameters(self) -> list[Tensor]:
        return [self.delta]

    def __call__(self) -> Tensor:
        return (self.start + self.delta).clamp(0, 1)

    def constrain_(self) -> None:
        with torch.no_grad():
            if self.norm == "linf":
                self.delta.clamp_(-self.epsilon, self.epsilon)
            else:
                norms = self.delta.flatten(1).norm(dim=1).clamp_min(1e-12)
                self.delta.mul_((self.epsilon / norms).clamp(max=1).view(-1, 1, 1, 1))
            self.delta.copy_((self.start + self.delta).clamp(0, 1) - self.start)

    def to(self, device: torch.device) -> PerturbedImage:
        if self.delta.device != torch.device(device):
            self.start = self.start.to(device)
            self.delta = self.delta.detach().to(device).requires_grad_(True)
        return self


def spectrum_scale(height: int, width: int, decay_power: float, device: torch.device) -> Tensor:
    """Amplitude per frequency of an ``rfft2`` spectrum: 1/f^decay_power, f floored at 1/max(H, W)."""
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, device=device)[None, :]
    frequency = (fy.pow(2) + fx.pow(2)).sqrt().clamp_min(1.0 / max(height, width))
    return frequency.pow(-decay_power)


def colour_image(raw: Tensor, decorrelate: bool) -> Tensor:
    """Unbounded ``[B,3,H,W]`` → pictures in (0, 1): optional colour decorrelation, then a sigmoid."""
    if decorrelate:
        matrix = torch.tensor(COLOUR_CORRELATION_SQRT, dtype=raw.dtype, device=raw.device)
        matrix = matrix / matrix.norm(dim=0).max()
        raw = torch.einsum("ij,bjhw->bihw", matrix, raw)
    return torch.sigmoid(raw)


def pixels(size: int | tuple[int, int], batch: int = 1, *, sd: float = 0.01,
           generator: torch.Generator | None = None) -> PixelImage:
    """Free pixels starting at mid-grey plus Gaussian noise of standard deviation ``sd``."""
    height, width = _size(size)
    _check_batch(batch)
    check_picture_memory(batch, height, width, device=None if generator is None else generator.device)
    return PixelImage(0.5 + sd * _randn((batch, 3, height, width), generator))


def fourier(size: int | tuple[int, int], batch: int = 1, *, sd: float = 0.01, decay_power: float = 1.0,
            decorrelate: bool = True, generator: torch.Generator | None = None) -> FourierImage:
    """A decorrelated Fourier parameterisation: spectrum noise of ``sd``, amplitudes ∝ 1/f^decay_power."""
    height, width = _size(size)
    _check_batch(batch)
    check_picture_memory(batch, height, width, device=None if generator is None else generator.device)
    spectrum = sd * _randn((batch, 3, height, width // 2 + 1, 2), generator)
    return FourierImage(spectrum, height, width, decay_power, decorrelate)


def from_image(pictures: Tensor) -> PixelImage:
    """Free pixels starting at ``pictures`` (``[3,H,W]`` or ``[B,3,H,W]`` in [0, 1])."""
    return PixelImage(_batch_of(pictures))


def perturbed(pictures: Tensor, epsilon: float, *, norm: str = "linf", random_start: bool = False,
              generator: torch.Generator | None = None) -> PerturbedImage:
    """``pictures`` plus a change δ with ‖δ‖ ≤ ``epsilon`` (L∞ or L2), optionally starting at a random δ."""
    start = _batch_of(pictures)
    delta = torch.zeros_like(start)
    if random_start:
        delta = (2 * _rand(start.shape, generator) - 1).to(start) * epsilon
        if norm == "l2":
            delta = delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1) * epsilon
    return PerturbedImage(start, epsilon, norm, delta)


def _batch_of(pictures: Tensor) -> Tensor:
    if not isinstance(pictures, Tensor):
        raise TypeError(f"pictures are a Tensor [3,H,W] or [B,3,H,W] in [0, 1], got {type(pictures).__name__}; "
                        "load files with convscope.load_image")
    if pictures.dim() == 3:
        pictures = pictures[None]
    if pictures.dim() != 4 or pictures.shape[1] != 3:
        raise ValueError(f"pictures are [3,H,W] or [B,3,H,W] in [0, 1], got {tuple(pictures.shape)}")
    return pictures.float()


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {size}")
    return int(height), int(width)


def _check_batch(batch: int) -> None:
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}")


def _randn(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device)


def _rand(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(tuple(shape), generator=generator, device=device)
