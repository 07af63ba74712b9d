"""Pictures to bytes for the browser: PNG and ``data:`` URLs."""

from __future__ import annotations

import base64
import io

from PIL import Image
from torch import Tensor

from convscope.render.picture import Picture, to_uint8


def png(picture: Picture | Tensor) -> bytes:
    """PNG bytes of a :class:`Picture` or a ``[3,H,W]`` / ``[H,W]`` tensor in [0, 1]."""
    array = picture.array if isinstance(picture, Picture) else to_uint8(picture)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_url(picture: Picture | Tensor) -> str:
    """A ``data:image/png;base64,…`` URL the browser shows without another request."""
    return "data:image/png;base64," + base64.b64encode(png(picture)).decode("ascii")
