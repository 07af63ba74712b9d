"""How many channels' pictures one optimisation batch may hold on a device: measured, not guessed.

One picture goes forward up to the layer with gradients on; the tensors autograd keeps for the backward pass are
counted (``torch.autograd.graph.saved_tensors_hooks``). A batch is then sized to half the free memory.
"""

from __future__ import annotations

import torch

from convscope.hooks import inspection_mode
from convscope.memory import available_bytes, check_fits, size_text
from convscope.models.model import Model
from convscope.synthesis.loop import forward_until_done, stop_after
from convscope.synthesis.sizes import BYTES_PER_VALUE

SHARE = 0.5  # of the free memory one batch may take
CPU_PICTURES = 24


def bytes_per_picture(model: Model, layer: str, size: int, model_size: tuple[int, int] | None = None) -> int:
    """Bytes one optimised picture of ``size`` pixels takes up to ``layer``: what autograd saves (twice, for the
    gradients) plus the picture's parameterisation and optimiser state."""
    saved = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    side = size + size // 4  # the robustness transforms pad the picture first
    shape = (1, model.preprocess.channels, *(model_size or (side, side)))
    picture = torch.full(shape, 0.0, device=model.device, requires_grad=True)
    with inspection_mode(model.net), stop_after(model.net, [layer]), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward_until_done(model.net, picture)
    return 2 * saved[0] + BYTES_PER_VALUE * 3 * size * size


def default_batch(device: torch.device, pictures_per_channel: int) -> int:
    """Channels per batch when none is asked for: on a GPU 64 (it is busy only with large batches); on a CPU
    those of about 24 pictures (larger batches leave the caches and cost more per picture)."""
    return 64 if device.type == "cuda" else max(1, CPU_PICTURES // pictures_per_channel)


def channels_per_batch(model: Model, layer: str, size: int, pictures_per_channel: int, wanted: int | None,
                       model_size: tuple[int, int] | None = None) -> int:
    """Channels per optimisation batch: ``wanted`` (or :func:`default_batch`) when it fits in ``SHARE`` of the free
    memory, else as many as fit; a one-line ``ValueError`` when not even one channel's pictures fit."""
    default = default_batch(model.device, pictures_per_channel)
    per_channel = pictures_per_channel * bytes_per_picture(model, layer, size, model_size)
    check_fits(per_channel, f"the {pictures_per_channel} pictures of one channel of {layer} at {size} px",
               "give a smaller --size, or fewer facets", model.device)
    free = available_bytes(model.device)
    most = max(1, int(SHARE * free // per_channel)) if free is not None else wanted or default
    chosen = min(wanted or default, most)
    if wanted is not None and wanted > most:
        from convscope.logs import get_logger

        get_logger(__name__).info(f"{wanted} channels per batch would take {size_text(wanted * per_channel)}; "
                                  f"{chosen} fit in the memory free now")
    return chosen
