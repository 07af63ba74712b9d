"""How a model wants its pixels: short-side resize, centre crop, mean/std normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.picture_checks import check_dimensions, check_picture


@dataclass(frozen=True)
class Preprocess:
    """Turns pictures (float ``[C,H,W]`` in [0, 1], any size) into a normalised batch.

    ``resize`` is the short side after resizing (``None`` keeps the size), ``crop``
    the side of the centre square (``None`` keeps the whole image), ``channels`` the
    number of colour channels the model reads (1 converts to luminance).
    """

    resize: int | None = 256
    crop: int | None = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    channels: int = 3

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values each, got {self.mean} and {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    @property
    def input_size(self) -> tuple[int, int]:
        """Height and width of the tensors this produces (when it crops)."""
        side = self.crop or self.resize or 224
        return side, side

    def __call__(self, images: Tensor | Sequence[Tensor]) -> Tensor:
        """Pictures ``[C,H,W]`` / ``[B,C,H,W]`` or a list of them → normalised ``[B,C,h,w]``."""
        return self.normalize(self.fit(images))

    def fit(self, images: Tensor | Sequence[Tensor]) -> Tensor:
        """Resize and crop without normalising: a batch of pictures in [0, 1]."""
        if isinstance(images, Tensor):
            images = [images] if images.dim() == 3 else list(images)
        if len(images) == 0:
            raise ValueError("no images were given")
        return torch.stack([self._fit_one(_check_picture(image)) for image in images])

    def _fit_one(self, image: Tensor) -> Tensor:
        image = _match_channels(image.float(), self.channels)
        if self.resize is not None:
            height, width = image.shape[-2:]
            scale = self.resize / min(height, width)
            size = (max(self.resize, round(height * scale)), max(self.resize, round(width * scale)))
            check_dimensions(size[1], size[0], f"the picture resized to a short side of {self.resize}")
            if size != (height, width):
                image = F.interpolate(image[None], size=size, mode=self.interpolation, antialias=True,
                                      align_corners=False)[0].clamp(0, 1)
        if self.crop is not None:
            image = center_crop(image, self.crop)
        return image

    def normalize(self, pictures: Tensor) -> Tensor:
        """Pictures in [0, 1] → model input."""
        mean, std = self._stats(pictures)
        return (pictures - mean) / std

    def denormalize(self, inputs: Tensor) -> Tensor:
        """Model input → pictures in [0, 1] (not clipped)."""
        mean, std = self._stats(inputs)
        return inputs * std + mean

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(-1, 1, 1)
        return mean, std


def center_crop(image: Tensor, side: int) -> Tensor:
    """The central ``side``×``side`` square; smaller images are padded with edge pixels first."""
    height, width = image.shape[-2:]
    if height < side or width < side:
        pad_h, pad_w = max(0, side - height), max(0, side - width)
        image = F.pad(image[None], (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2),
                      mode="replicate")[0]
        height, width = image.shape[-2:]
    top, left = (height - side) // 2, (width - side) // 2
    return image[..., top:top + side, left:left + side]


def _check_picture(image: Tensor) -> Tensor:
    return check_picture(image)


def _match_channels(image: Tensor, channels: int) -> Tensor:
    if image.shape[0] == 4:
        image = image[:3]
    if channels == 1 and image.shape[0] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
        return (image * weights.view(3, 1, 1)).sum(0, keepdim=True)
    if channels == 3 and image.shape[0] == 1:
        return image.expand(3, -1, -1)
    return image
