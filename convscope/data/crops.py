"""A pool of square crops of the bundled sample photos: a small real image set that works offline."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor

from convscope.data.pictures import PictureSet
from convscope.images import SAMPLE_ALIASES, SAMPLES, load_sample
from convscope.suggestions import unknown

DEFAULT_SCALES = (1.0, 0.6, 0.4)


class Crop(NamedTuple):
    photo: int
    top: int
    left: int
    side: int


@functools.lru_cache(maxsize=len(SAMPLES))
def _photo(name: str) -> Tensor:
    return load_sample(name)


class SampleCrops(PictureSet):
    """Square crops of the sample photos at several scales, labelled by photo.

    At scale ``s`` the crop side is ``s`` × the photo's short side; neighbouring crops share
    at most ``overlap`` of a side (evenly spread from edge to edge, both ways). The class
    names are the photo names.
    """

    def __init__(self, photos: Sequence[str] = SAMPLES, scales: Sequence[float] = DEFAULT_SCALES,
                 overlap: float = 0.5) -> None:
        photos, scales = list(photos), [float(s) for s in scales]
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap is a share of the crop side in [0, 1), got {overlap}")
        if not photos:
            raise ValueError("SampleCrops needs at least one photo name")
        for name in photos:
            if name in SAMPLE_ALIASES:  # one photo under two labels would make its neighbours "wrong"
                raise ValueError(f"sample {name!r} is the same photo as {SAMPLE_ALIASES[name]!r}: name it once, "
                                 f"as {SAMPLE_ALIASES[name]!r}")
            if photos.count(name) > 1:
                raise ValueError(f"sample {name!r} is named {photos.count(name)} times: name each photo once")
            if name not in SAMPLES:
                raise unknown("sample photo", name, SAMPLES, hint="the photos are " + ", ".join(SAMPLES))
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"crop scales are fractions of the short side in (0, 1], got {scales}")
        self.photos, self.scales, self.overlap = photos, scales, float(overlap)
        self.class_names = photos
        self.crops = [crop for i, name in enumerate(photos) for crop in _crops_of(i, _photo(name), scales, overlap)]

    def __len__(self) -> int:
        return len(self.crops)

    def picture(self, index: int) -> Tensor:
        """The crop ``[3,side,side]`` in [0, 1]."""
        crop = self.crops[self.check_index(index)]
        photo = _photo(self.photos[crop.photo])
        return photo[:, crop.top:crop.top + crop.side, crop.left:crop.left + crop.side]

    def label(self, index: int) -> int:
        """The index (in ``photos``) of the photo the crop comes from."""
        return self.crops[self.check_index(index)].photo

    def name(self, index: int) -> str:
        """The photo, the crop's side and its top-left corner."""
        crop = self.crops[self.check_index(index)]
        return f"{self.photos[crop.photo]} {crop.side}px at ({crop.top},{crop.left})"

    def spec(self) -> dict[str, Any]:
        """What identifies this set (photos, scales, overlap), as stored with a scan."""
        return {"kind": "sample-crops", "photos": self.photos, "scales": self.scales, "overlap": self.overlap}


def _crops_of(photo: int, pixels: Tensor, scales: Sequence[float], overlap: float) -> list[Crop]:
    height, width = pixels.shape[-2:]
    crops = []
    for scale in scales:
        side = max(1, round(scale * min(height, width)))
        for top in _steps(height, side, overlap):
            for left in _steps(width, side, overlap):
                crops.append(Crop(photo, top, left, side))
    return crops


def _steps(length: int, side: int, overlap: float) -> list[int]:
    """Evenly spaced starts from 0 to ``length - side``, at most ``(1 - overlap)`` of a side apart."""
    room = length - side
    count = math.ceil(room / (side * (1 - overlap))) + 1 if room > 0 else 1
    return [round(i * room / (count - 1)) if count > 1 else room // 2 for i in range(count)]
