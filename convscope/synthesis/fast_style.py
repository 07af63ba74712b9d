"""Fast style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016, https://arxiv.org/abs/1603.08155).

A small image-transform network is trained once per style with perceptual losses —
the same content and Gram losses as :mod:`convscope.synthesis.style`, computed by the
classifier as a fixed loss network — on a pool of content pictures; it then stylises
any picture in one forward pass. The network follows the paper (9×9 and 3×3
convolutions, two stride-2 downsamplings, five residual blocks, two upsamplings) with
instance normalisation (Ulyanov et al., 2016) and nearest-neighbour upsampling
followed by a convolution instead of transposed convolutions (no checkerboard artefacts).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model, as_model
from convscope.progress import progress_bar
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.layer_choice import style_layers as default_layers
from convscope.synthesis.loop import forward_until_done, stop_after
from convscope.synthesis.matching import gram_matrix, layer_features, normalised_distance, smooth
from convscope.synthesis.seeded import draw_index
from convscope.synthesis.texture import _picture, resize_short_side
from convscope.validation import regular_file


class _ConvLayer(nn.Sequential):
    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1, upsample: bool = False,
                 norm: bool = True, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(channels_in, channels_out, kernel, stride)]
        if norm:
            layers.append(nn.InstanceNorm2d(channels_out, affine=True))
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_ConvLayer(channels, channels, 3), _ConvLayer(channels, channels, 3, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class TransformNet(nn.Module):
    """Pictures ``[B,3,H,W]`` in [0, 1] → stylised pictures in [0, 1] (H, W multiples of 4 are exact)."""

    def __init__(self, width: int = 32, residual_blocks: int = 5) -> None:
        super().__init__()
        if width < 1 or residual_blocks < 0:
            raise ValueError(f"width must be ≥ 1 and residual_blocks ≥ 0, got {width} and {residual_blocks}")
        self.width, self.residual_blocks = width, residual_blocks
        self.body = nn.Sequential(
            _ConvLayer(3, width, 9), _ConvLayer(width, 2 * width, 3, stride=2),
            _ConvLayer(2 * width, 4 * width, 3, stride=2),
            *[_Residual(4 * width) for _ in range(residual_blocks)],
            _ConvLayer(4 * width, 2 * width, 3, upsample=True), _ConvLayer(2 * width, width, 3, upsample=True),
            _ConvLayer(width, 3, 9, norm=False, relu=False))

    def forward(self, pictures: Tensor) -> Tensor:
        """Stylise pictures ``[B,3,H,W]`` in [0, 1] (any size) into pictures of the same size."""
        height, width = pictures.shape[-2:]
        padded_h, padded_w = -(-height // 4) * 4, -(-width // 4) * 4
        x = F.pad(pictures, (0, padded_w - width, 0, padded_h - height), mode="replicate")
        return torch.sigmoid(self.body(x * 2 - 1))[..., :height, :width]


@dataclass
class FastStyle:
    """A trained transform network; :meth:`apply` stylises pictures in one forward pass."""

    __repr__ = short_repr

    net: TransformNet
    style: Tensor
    losses: Tensor
    settings: dict = field(default_factory=dict)

    def apply(self, pictures: Tensor, *, size: int | None = None, batch_size: int = 8) -> Tensor:
        """Stylise ``[3,H,W]`` or ``[B,3,H,W]`` pictures in [0, 1] (short side scaled to ``size`` when given)."""
        single = pictures.dim() == 3
        batch = pictures[None] if single else pictures
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f"pictures are [3,H,W] or [B,3,H,W] in [0, 1], got {tuple(pictures.shape)}")
        if size is not None:
            batch = torch.stack([resize_short_side(p, size) for p in batch])
        device = next(self.net.parameters()).device
        outputs = []
        with torch.no_grad():
            was_training = self.net.training
            self.net.eval()
            try:
                for start in range(0, len(batch), batch_size):
                    outputs.append(self.net(batch[start:start + batch_size].float().to(device)).cpu())
            finally:
                self.net.train(was_training)
        out = torch.cat(outputs)
        return out[0] if single else out

    @property
    def loss_reduction(self) -> float:
        """Mean loss of the first tenth of training ÷ mean loss of the last tenth."""
        tenth = max(1, len(self.losses) // 10)
        return float(self.losses[:tenth].mean() / self.losses[-tenth:].mean().clamp_min(1e-12))

    def save(self, path: str | Path) -> Path:
        """Save the network, its settings and losses (loadable by ``convscope fast-style apply``); returns the path."""
        path = save_target(path)
        buffer = io.BytesIO()  # serialised first: a failed write leaves neither a torn file nor a temporary one
        torch.save({"kind": "convscope-fast-style", "width": self.net.width,
                    "residual_blocks": self.net.residual_blocks, "state_dict": self.net.state_dict(),
                    "style": self.style, "losses": self.losses, "settings": self.settings}, buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(buffer.getvalue())
            os.replace(temporary, path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise ValueError(f"cannot write the style network to {str(path)!r}: {error.strerror or error}") from error
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> FastStyle:
        """A network written by :meth:`save` (``convscope fast-style train``)."""
        path = regular_file(path, "style network file", "give a file written by `convscope fast-style train STYLE`")
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"cannot read {str(path)!r} as a convscope style network: {error}") from error
        if not isinstance(saved, dict) or saved.get("kind") != "convscope-fast-style":
            raise ValueError(f"{str(path)!r} is not a convscope style network (written by FastStyle.save)")
        net = TransformNet(saved["width"], saved["residual_blocks"])
        net.load_state_dict(saved["state_dict"])
        from convscope.devices import pick_device

        return cls(net.to(pick_device(device)).eval(), saved["style"], saved["losses"], saved["settings"])

    def picture(self, contents: Tensor, tile_size: int = 192) -> Picture:
        """The style, then each content picture above its stylised version."""
        made = self.apply(contents)
        made = made[None] if made.dim() == 3 else made
        contents = contents[None] if contents.dim() == 3 else contents
        rows = grid(torch.cat([contents.cpu(), made]), columns=len(made), tile_size=tile_size,
                    labels=["content"] * len(made) + ["stylised (one pass)"] * len(made))
        style = grid(self.style[None], labels=["style"], tile_size=tile_size)
        s = self.settings
        return titled(stack([style, rows], gap=12), "Fast style transfer",
                      f"transform network trained {s.get('steps')} steps × batch {s.get('batch')} at "
                      f"{s.get('size')} px; loss ÷{self.loss_reduction:.1f}")


def save_target(path: str | Path) -> Path:
    """``path`` as a file to write a style network to: a folder, pipe or device is refused before any training."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a pipe or device)"
        raise ValueError(f"{str(path)!r} is {kind}: give a file name for the style network, e.g. "
                         f"{str(path / 'style.pt') if path.is_dir() else 'fast_style.pt'!r}")
    return path


def random_crops(pictures: Sequence[Tensor], count: int, size: int, generator: torch.Generator) -> Tensor:
    """``count`` random square crops (side 50–100 % of the short side, random mirror) resized to ``size``."""
    crops = []
    for _ in range(count):
        picture = pictures[draw_index(len(pictures), generator)]
        height, width = picture.shape[-2:]
        short = min(height, width)
        side = max(8, int(short * (0.5 + 0.5 * _uniform(generator))))
        top, left = draw_index(height - side + 1, generator), draw_index(width - side + 1, generator)
        crop = picture[:, top:top + side, left:left + side][None]
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
        crops.append(crop.flip(-1) if _uniform(generator) < 0.5 else crop)
    return torch.stack(crops).clamp(0, 1)


def train_fast_style(model: Model | nn.Module, style: Tensor, contents: Sequence[Tensor], *, size: int = 256,
                     steps: int = 2000, batch: int = 4, lr: float = 1e-3, width: int = 32,
                     content_layer: str | None = None, style_layers: Sequence[str] | None = None,
                     content_weight: float = 1.0, style_weight: float = 10.0, tv_weight: float = 1e-3,
                     smoothing: str | None = None, style_size: int | None = None,
                     generator: torch.Generator | None = None, progress: bool = True) -> FastStyle:
    """Train a :class:`TransformNet` for ``style`` on random crops of ``contents`` (pictures in [0, 1]).

    Per step: ``batch`` crops of ``size`` px → network → loss network features; loss =
    content_weight·‖Φ(y) − Φ(x)‖²/‖Φ(x)‖² + style_weight·Σ_l w_l·Gram distance + tv_weight·TV²;
    Adam on the network only — the loss network is left as found.
    """
    model = as_model(model)
    if not contents:
        raise ValueError("give at least one content picture to train on (e.g. the bundled photos)")
    if steps < 1 or batch < 1 or size < 16:
        raise ValueError(f"steps and batch must be ≥ 1 and size ≥ 16, got {steps}, {batch}, {size}")
    device = model.device
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    chosen = default_layers(model)
    content_layer = content_layer or chosen.content
    layers = tuple(style_layers) if style_layers is not None else chosen.style
    smoothing = smoothing if smoothing is not None else chosen.smoothing
    style = resize_short_side(_picture(style), style_size or size)
    style_features = layer_features(model, style, layers)
    style_grams = {layer: gram_matrix(smooth(style_features[layer], smoothing)) for layer in layers}
    pool = [resize_short_side(_picture(p), round(size * 1.5)) for p in contents]
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TransformNet(width).to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    mean = torch.tensor(model.preprocess.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(model.preprocess.std, device=device).view(1, -1, 1, 1)
    names = list(dict.fromkeys([content_layer, *layers]))
    losses = []
    with inspection_mode(model.net), capture(model.net, names) as store, stop_after(model.net, names) as restart:

        def features(pictures: Tensor) -> None:
            restart()
            forward_until_done(model.net, (pictures - mean) / std)

        for _ in progress_bar(range(steps), desc="fast style", enabled=progress, leave=False):
            crops = random_crops(pool, batch, size, generator).to(device)
            with torch.no_grad():
                features(crops)
                target = smooth(store.activation(content_layer), smoothing)
            made = net(crops)
            features(made)
            content = normalised_distance(smooth(store.activation(content_layer), smoothing), target).mean()
            style_loss = sum(_relative(gram_matrix(smooth(store.activation(layer), smoothing)), style_grams[layer])
                             for layer in layers) / len(layers)
            tv = _tv(made, std)
            loss = content_weight * content + style_weight * style_loss + tv_weight * tv
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.detach())
    net.eval()
    settings = {"steps": steps, "batch": batch, "size": size, "lr": lr, "width": width,
                "content_layer": content_layer, "style_layers": list(layers), "content_weight": content_weight,
                "style_weight": style_weight, "tv_weight": tv_weight, "smoothing": smoothing}
    return FastStyle(net, style.cpu(), torch.stack(losses).float().cpu(), settings)


def _relative(gram: Tensor, goal: Tensor) -> Tensor:
    return ((gram - goal).flatten(1).pow(2).sum(1) / goal.flatten(1).pow(2).sum(1).clamp_min(1e-12)).mean()


def _tv(images: Tensor, std: Tensor) -> Tensor:
    x = images / std
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).sum(1).mean()


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand(1, generator=generator, device=generator.device).item())
