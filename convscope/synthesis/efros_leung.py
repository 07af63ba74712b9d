"""Non-parametric texture synthesis (Efros & Leung, ICCV 1999, https://doi.org/10.1109/ICCV.1999.790383).

The output grows from a small seed copied from the source. Each unfilled pixel on the
border of the filled region is compared, through its window of already-filled
neighbours, with every window of the source (sum of squared differences, weighted by a
Gaussian and by which neighbours are known); one of the windows whose distance is
within ``1 + tolerance`` of the best is drawn at random and its centre pixel copied.

Vectorised: the source windows are unfolded once into a matrix on the device; each
round matches a batch of border pixels (those with the most known neighbours first)
against all windows with two matrix products.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.devices import pick_device
from convscope.progress import progress_bar
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.seeded import draw_index


@dataclass
class EfrosLeungResult:
    """``image`` ``[3,H,W]`` in [0, 1] (CPU) grown from ``source``; ``mean_error`` the average matched
    window distance per pixel (0 = every window had an exact match in the source)."""

    __repr__ = short_repr

    source: Tensor
    image: Tensor
    window: int
    mean_error: float
    seconds: float

    def picture(self, tile_size: int = 192) -> Picture:
        """The source next to the grown texture, with the window and the mean window error."""
        pictures = [grid(self.source[None].float(), labels=["source"], tile_size=tile_size),
                    grid(self.image[None].float(), labels=["grown"], tile_size=tile_size)]
        return titled(stack(pictures, gap=12), "Efros–Leung texture",
                      f"window {self.window}, mean window error {self.mean_error:.4f}, {self.seconds:.1f} s")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def efros_leung(source: Tensor, size: int | tuple[int, int] = 64, *, window: int = 11, tolerance: float = 0.1,
                seed_size: int = 3, pixels_per_round: int = 16, generator: torch.Generator | None = None,
                device: str | torch.device | None = None, progress: bool = True) -> EfrosLeungResult:
    """Grow a ``size`` texture from ``source`` (``[3,h,w]`` in [0, 1]; keep it small, e.g. 64×64).

    ``window`` is the odd side of the compared neighbourhood (larger keeps larger
    structures); ``tolerance`` the ε of the paper; ``pixels_per_round`` how many border
    pixels are matched at once (1 reproduces the one-pixel-at-a-time order exactly).
    """
    began = time.perf_counter()
    if source.dim() != 3 or source.shape[0] not in (1, 3):
        raise ValueError(f"source is a picture [3,h,w] in [0, 1], got {tuple(source.shape)}")
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be odd and ≥ 3, got {window}")
    if tolerance < 0 or pixels_per_round < 1 or seed_size < 1:
        raise ValueError("tolerance must be ≥ 0, pixels_per_round and seed_size ≥ 1")
    height, width = (size, size) if isinstance(size, int) else size
    device = pick_device(device)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    src = source.float().expand(3, -1, -1).to(device)
    if src.shape[1] < window or src.shape[2] < window:
        raise ValueError(f"the source ({src.shape[1]}x{src.shape[2]}) is smaller than the {window}x{window} window")
    radius = window // 2
    patches = F.unfold(src[None], window)[0].T.contiguous()          # [N, 3·w·w]
    centres = patches.view(-1, 3, window * window)[:, :, window * window // 2]  # [N, 3]
    squared = patches.pow(2).view(-1, 3, window * window).sum(1)     # [N, w·w]
    gauss = _gaussian_window(window, device)                          # [w·w]

    canvas = torch.zeros(3, height + 2 * radius, width + 2 * radius, device=device)
    known = torch.zeros(height + 2 * radius, width + 2 * radius, dtype=torch.bool, device=device)
    seed = min(seed_size, height, width, src.shape[1], src.shape[2])
    sy = draw_index(src.shape[1] - seed + 1, generator)
    sx = draw_index(src.shape[2] - seed + 1, generator)
    top, left = radius + (height - seed) // 2, radius + (width - seed) // 2
    canvas[:, top:top + seed, left:left + seed] = src[:, sy:sy + seed, sx:sx + seed]
    known[top:top + seed, left:left + seed] = True

    offsets_y, offsets_x = torch.meshgrid(torch.arange(-radius, radius + 1, device=device),
                                          torch.arange(-radius, radius + 1, device=device), indexing="ij")
    offsets_y, offsets_x = offsets_y.reshape(-1), offsets_x.reshape(-1)
    inside = torch.zeros_like(known)
    inside[radius:radius + height, radius:radius + width] = True
    counts = F.conv2d(known[None, None].float(), torch.ones(1, 1, window, window, device=device),
                      padding=radius)[0, 0]                              # known neighbours per pixel
    errors: list[Tensor] = []
    remaining = height * width - seed * seed
    bar = progress_bar(total=remaining, desc="efros-leung", enabled=progress, leave=False)
    while remaining > 0:
        border = inside & ~known & (counts > 0)
        ys, xs = border.nonzero(as_tuple=True)
        order = counts[ys, xs].argsort(descending=True, stable=True)[:pixels_per_round]
        ys, xs = ys[order], xs[order]
        near_y, near_x = ys[:, None] + offsets_y, xs[:, None] + offsets_x        # [P, w·w]
        values = canvas[:, near_y, near_x].permute(1, 0, 2)                     # [P, 3, w·w]
        weights = known[near_y, near_x].float() * gauss                          # [P, w·w]
        distance = window_distances(values, weights / weights.sum(1, keepdim=True), patches, squared)
        limit = distance.min(1, keepdim=True).values.clamp_min(0) * (1 + tolerance) + 1e-9
        noise = torch.rand(distance.shape, generator=generator, device=generator.device).to(device)
        choice = noise.mul_(distance <= limit).argmax(1)                 # uniform among the acceptable
        canvas[:, ys, xs] = centres[choice].T
        known[ys, xs] = True
        counts.index_put_((near_y.reshape(-1).clamp(0, counts.shape[0] - 1),
                           near_x.reshape(-1).clamp(0, counts.shape[1] - 1)),
                          torch.ones(near_y.numel(), device=device), accumulate=True)
        errors.append(distance.gather(1, choice[:, None])[:, 0].clamp_min(0))
        remaining -= len(ys)
        bar.update(len(ys))
    bar.close()
    image = canvas[:, radius:radius + height, radius:radius + width].clamp(0, 1).cpu()
    mean_error = float(torch.cat(errors).mean()) if errors else 0.0
    return EfrosLeungResult(source.float().expand(3, -1, -1).cpu(), image, window, mean_error,
                            time.perf_counter() - began)


def window_distances(values: Tensor, weights: Tensor, patches: Tensor, squared: Tensor | None = None) -> Tensor:
    """Weighted squared distances ``[P,N]`` between P partial windows and N source windows.

    ``values`` ``[P,3,K]`` (K = w·w positions), ``weights`` ``[P,K]`` (0 where unknown),
    ``patches`` ``[N,3·K]`` (unfolded, colour-major), ``squared`` their squares summed over
    colours ``[N,K]``. Uses Σ m (t − s)² = Σ m t² − 2 Σ m t s + Σ m s²: two matrix products.
    """
    count = values.shape[0]
    if squared is None:
        squared = patches.pow(2).view(patches.shape[0], 3, -1).sum(1)
    target_term = (weights[:, None] * values.pow(2)).sum((1, 2))
    cross = (weights[:, None] * values).reshape(count, -1) @ patches.T
    return (weights @ squared.T).sub_(cross, alpha=2).add_(target_term[:, None])


def _gaussian_window(window: int, device: torch.device) -> Tensor:
    sigma = window / 6.4
    offsets = torch.arange(window, device=device, dtype=torch.float32) - window // 2
    line = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (line[:, None] * line[None, :]).reshape(-1)
