"""Feature ablation over superpixels or any feature mask (Captum's FeatureAblation; Zeiler & Fergus's occlusion with
segments instead of squares, https://arxiv.org/abs/1311.2901)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import (
    Attribution,
    batch_size_for,
    chunks,
    copies_target,
    fast_layout,
    forward,
    image_classes,
)
from convscope.attribution.forward_args import rows
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target


class FeatureAblation(Attribution):
    """``S(x) − S(x with segment g set to the baseline)`` on every pixel of segment ``g``, ``[B,1,H,W]``.

    ``feature_mask`` (Captum's name) is an integer tensor ``[B or 1, 1, H, W]`` numbering each
    pixel's segment; ``None`` takes ``segments`` SLIC superpixels of each picture
    (scikit-image, ``compactness`` as there). ``baseline`` as in Integrated Gradients
    (default ``'mean'``, the normalisation mean; Captum's ``baselines=`` also works).
    ``batch_size`` ablated copies per pass, across images. Equal to Captum's ``FeatureAblation``.
    """

    takes_forward_args = True

    name = "feature_ablation"
    title = "Feature ablation"
    paper = "https://arxiv.org/abs/1311.2901"

    def __init__(self, model: Model | nn.Module, *, feature_mask: Tensor | None = None, segments: int = 50,
                 compactness: float = 10.0, baseline: str | float | Tensor = "mean", batch_size: int | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(model)
        if feature_mask is not None and (not isinstance(feature_mask, Tensor) or feature_mask.is_floating_point()
                                         or feature_mask.dim() != 4 or feature_mask.shape[1] != 1):
            raise ValueError("feature_mask= is an integer tensor [B or 1, 1, H, W] numbering each pixel's segment, "
                             f"got {getattr(feature_mask, 'shape', type(feature_mask).__name__)}")
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
            raise ValueError(f"segments must be a positive integer, got {segments!r}")
        self.feature_mask, self.segments, self.compactness = feature_mask, segments, compactness
        self.baseline = baseline
        self.batch_size, self.progress = batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it

    def mask_for(self, inputs: Tensor) -> Tensor:
        """The segment of every pixel, ``[B,1,H,W]`` (long, on the inputs' device)."""
        if self.feature_mask is not None:
            if self.feature_mask.shape[-2:] != inputs.shape[-2:] or self.feature_mask.shape[0] not in (1, len(inputs)):
                raise ValueError(f"feature_mask {tuple(self.feature_mask.shape)} does not fit the inputs "
                                 f"{tuple(inputs.shape)}: give [B or 1, 1, H, W]")
            return self.feature_mask.to(inputs.device).long().expand(len(inputs), 1, *inputs.shape[-2:])
        return superpixels(self.model, inputs, self.segments, self.compactness)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        mask = self.mask_for(inputs)
        baseline = baseline_tensor(self.baseline, inputs, self.model)
        output, found = forward(self.model, inputs, target.layers)
        clean = target(output, found).float()
        classes = image_classes(target, output)
        images, groups = [], []
        for b in range(len(inputs)):
            for group in torch.unique(mask[b]).tolist():
                images.append(b)
                groups.append(group)
        images_t = torch.tensor(images, device=inputs.device)
        groups_t = torch.tensor(groups, device=inputs.device)
        drops = torch.empty(len(images), device=inputs.device)
        net = self.model.net
        with inspection_mode(net), capture(net, list(target.layers), detach=True) as store, torch.no_grad():
            for part in chunks(len(images), batch_size_for(self.batch_size, inputs.device), description=self.title,
                               progress=self.progress):
                image, group = images_t[part], groups_t[part]
                where = mask[image] == group.view(-1, 1, 1, 1)
                copies = torch.where(where, baseline[image], inputs[image])
                with rows(image):
                    out = net(fast_layout(copies))
                drops[part] = clean[image] - copies_target(target, classes, image)(out, store.activations).float()
        maps = torch.zeros(mask.shape, device=inputs.device)
        for index in range(len(images)):
            maps[images[index]][mask[images[index]] == groups[index]] = drops[index]
        return maps.to(inputs.dtype)

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """The positive drops, at ``size``."""
        return upsample(maps[:, 0].clamp_min(0), size)


def superpixels(model: Model, inputs: Tensor, segments: int, compactness: float) -> Tensor:
    """SLIC superpixels (scikit-image) of each picture, ``[B,1,H,W]``, numbered from 0."""
    try:
        from skimage.segmentation import slic
    except ImportError as error:
        raise ValueError("superpixels need scikit-image (pip install scikit-image); or give feature_mask=") from error
    pictures = model.preprocess.denormalize(inputs.detach()).clamp(0, 1).float().cpu()
    masks = []
    for picture in pictures:
        channels = picture.shape[0]
        image = picture.permute(1, 2, 0).numpy() if channels == 3 else picture[0].numpy()
        labels = slic(image, n_segments=segments, compactness=compactness, start_label=0,
                      channel_axis=-1 if channels == 3 else None)
        masks.append(torch.from_numpy(labels).long())
    return torch.stack(masks)[:, None].to(inputs.device)
