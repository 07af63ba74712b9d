"""What every attribution method shares: the call shape, input checks, gradient passes, targets for copies.

Every method is called the same way::

    method = GradCAM(model, layer="bn2")
    maps = method(inputs, target)      # inputs: a normalised batch [B,C,H,W] (model.prepare(pictures))
    maps = method.attribute(inputs, target=281)   # the same, spelt as in Captum
    maps = method.attribute(inputs, target=281, n_steps=16, internal_batch_size=8)  # settings for this call

``target`` is one class (index or name) for all images, one per image (a list or
``Tensor[B]``), ``None``/``'top'`` for each image's top class, a :class:`~convscope.Channel`
/ :class:`~convscope.Neuron`, or a callable on the output that works row by row.
The maps come back batch-first, on the model's device; batched results equal
image-by-image results.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from convscope.attribution.batch_norm_folding import norms_folded
from convscope.attribution.forward_args import rows
from convscope.backward_rules import backward_rules
from convscope.hooks import capture, inspection_mode, resolve_layer
from convscope.logs import get_logger
from convscope.models.model import Model, as_model
from convscope.progress import progress_bar
from convscope.render.overlay import upsample
from convscope.targets import (
    ClassProbability,
    Region,
    Target,
    TargetLike,
    as_target,
    check_finite_output,
    class_probabilities,
    class_scores,
)

log = get_logger(__name__)

# Captum's keyword names for the settings convscope's methods spell their own way; .attribute() takes either.
CAPTUM_NAMES = {"baselines": "baseline", "n_steps": "steps", "n_samples": "samples",
                "internal_batch_size": "batch_size", "nt_samples": "samples", "nt_type": "kind", "stdevs": "sigma",
                "nt_samples_batch_size": "batch_size", "perturbations_per_eval": "batch_size"}


class Attribution:
    """Base class: ``method(inputs, target) -> maps``, batch-first, on the model's device.

    ``style`` says how the maps are best shown: ``'heat'`` (one non-negative map per
    image), ``'image'`` (signed colour gradients, shown as a picture) or ``'saliency'``.
    """

    name: ClassVar[str] = ""
    title: str = ""  # title and style: the class's, or set on the instance (a noise tunnel's are its method's)
    paper: ClassVar[str] = ""
    style: str = "heat"
    may_ignore_pictures: ClassVar[bool] = False  # see convscope.attribution.picture_independence
    _given: tuple[tuple[object, ...], dict[str, object]]
    # Every forward pass is over the batch, its first image, or copies whose images it names (forward_args.rows):
    # Captum's additional_forward_args= can follow the images.
    takes_forward_args: ClassVar[bool] = False

    def __new__(cls, *args: object, **kwargs: object) -> Attribution:
        made = super().__new__(cls)
        made._given = (args, kwargs)  # the constructor's arguments, for a copy with other settings (.attribute)
        return made

    def __init__(self, model: Model | nn.Module) -> None:
        self.model = as_model(model)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "attribute" in cls.__dict__:
            raise TypeError(f"{cls.__name__} overrides attribute(), the public call that checks inputs and "
                            "targets; implement _attribute(inputs, target: Target) instead")

    def __call__(self, inputs: Tensor, target: TargetLike = None, **settings: object) -> Tensor:
        return self.attribute(inputs, target, **settings)

    def attribute(self, inputs: Tensor, target: TargetLike = None, *, additional_forward_args: object = None,
                  **settings: object) -> Tensor:
        """The maps for ``inputs`` (a normalised batch) and ``target``, as Captum's ``attribute(inputs, target=)``.

        ``settings`` change the method's settings for this call, by Captum's keyword names where
        the method has the concept (``baselines=``, ``n_steps=``, ``n_samples=``, ``feature_mask=``,
        ``internal_batch_size=``, ``nt_type=`` …) or by the constructor's own (``steps=``). A number
        given as ``baselines=`` is a value of the normalised input, as in Captum.
        ``additional_forward_args`` (Captum's): more arguments for the model's forward after the input,
        a tensor whose first dimension is the batch going with its images
        (:mod:`~convscope.attribution.forward_args`).
        """
        from convscope.attribution.forward_args import as_arguments, passing

        method = self.with_settings(**settings) if settings else self
        extra = as_arguments(additional_forward_args)
        if extra and not method.takes_forward_args:
            from convscope.attribution.registry import METHODS

            able = ", ".join(name for name, cls in METHODS.items() if cls.takes_forward_args)
            raise ValueError(f"{method.name or type(method).__name__} cannot pass additional_forward_args= to the "
                             f"model (some of its passes mix images or channels); these methods can: {able}")
        checked = check_inputs(inputs, method.model)
        with passing(method.model.net, extra, checked.shape[0], method.title or type(method).__name__):
            return method._maps(checked, as_target(target, method.model))

    def with_settings(self, **settings: object) -> Attribution:
        """A copy of this method with some constructor settings changed (Captum's names or convscope's)."""
        cls = type(self)
        signature = inspect.signature(cls.__init__)
        args, kwargs = self._given
        bound = signature.bind(None, *args, **kwargs)
        for key, value in settings.items():
            name = self.setting_name(key)
            if name is None:
                own = self.settings()
                first = {name: captum for captum, name in reversed(CAPTUM_NAMES.items()) if name in own}
                takes = [f"{first[name]}= ({name}=)" if name in first else f"{name}=" for name in own]
                raise TypeError(f"{self.name or cls.__name__} has no setting {key!r}; it takes target="
                                + "".join(f", {name}" for name in takes))
            if key == "baselines" and isinstance(value, int | float) and not isinstance(value, bool):
                value = torch.tensor(float(value))  # Captum's number is a value of the normalised input
            bound.arguments[name] = value
        return cls(*bound.args[1:], **bound.kwargs)

    def settings(self) -> list[str]:
        """The names of the constructor's settings (all but the model)."""
        return [name for name in inspect.signature(type(self).__init__).parameters if name not in ("self", "model")]

    def setting_name(self, key: str) -> str | None:
        """The constructor setting that ``key`` (convscope's or Captum's name) sets, or ``None``."""
        own = self.settings()
        name = key if key in own else CAPTUM_NAMES.get(key)
        return name if name in own else None

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        """The maps for checked ``inputs`` on the model's device and a resolved ``target``."""
        raise NotImplementedError

    def _maps(self, inputs: Tensor, target: Target) -> Tensor:
        """The maps with the settings that wrap any method's computation (a CAM's ``aug_smooth``)."""
        if getattr(self, "aug_smooth", False):
            from convscope.attribution.aug_smooth import augmented

            return augmented(self, inputs, target)
        return self._attribute(inputs, target)

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """Non-negative importance ``[B,H,W]`` at the input's ``size``, for overlays (bright = important)."""
        if maps.shape[1] == 1:
            return upsample(maps[:, 0].clamp_min(0), size)
        return upsample(maps.abs().amax(1), size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model.name})"


def check_inputs(inputs: Tensor, model: Model) -> Tensor:
    """A normalised batch ``[B,C,H,W]`` on the model's device in its floating-point type, or a ``ValueError`` saying
    how to make one."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a Tensor [B,C,H,W], got {type(inputs).__name__}; "
                        "turn pictures into one with model.prepare(pictures)")
    if inputs.dim() != 4:
        hint = " (add a batch dimension: inputs[None])" if inputs.dim() == 3 else ""
        raise ValueError(f"inputs must be a batch [B,C,H,W], got shape {tuple(inputs.shape)}{hint}; "
                         "model.prepare(pictures) makes one")
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point (a normalised batch), got {inputs.dtype}")
    from convscope.attribution.input_checks import check_channels_and_values

    check_channels_and_values(inputs, model)
    return inputs.detach().to(model.device, model.dtype)  # float64 or float16 batches run in the model's own type


def fast_layout(inputs: Tensor) -> Tensor:
    """On a CPU, ``inputs`` in channels-last memory order: the same values, convolutions run ~1.5× faster.

    Elsewhere ``inputs`` as they are: with float32 weights in the default order, a GPU would convert every layer.
    """
    if inputs.dim() == 4 and inputs.device.type == "cpu":
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def input_gradient(model: Model, inputs: Tensor, target: Target, rule: str | None = None) -> Tensor:
    """d target / d inputs ``[B,C,H,W]``; ``rule`` (``'deconvnet'``/``'guided'``) changes the rectifiers' backward.

    The pass runs with the batch norms folded into their convolutions
    (:func:`~convscope.attribution.batch_norm_folding.norms_folded`): the same function with one pass over memory
    fewer each way. Its float32 gradient differs from an unfolded pass's only by rounding — which, at a rectifier's
    kink (a pre-activation within rounding of 0, or of ReLU6's 6), can decide whether a unit passes the gradient.
    """
    net = model.net
    inputs = fast_layout(inputs.detach()).requires_grad_(True)
    with inspection_mode(net, grad_params=None), norms_folded(net, inputs[:1].detach(), target.layers), \
            capture(net, target.layers) as store:
        with backward_rules(net, rule) if rule else nullcontext():
            output = net(inputs)
            check_finite_output(output, model.name)
            scores = target(output, store.activations)
        (grad,) = torch.autograd.grad(scores.sum(), inputs, allow_unused=True)
    return torch.zeros_like(inputs).contiguous() if grad is None else grad.contiguous()


@dataclass
class LayerPass:
    """A layer's activations and the target's gradient there, plus the model output."""

    activations: Tensor
    grads: Tensor
    output: Tensor


def layer_gradient(model: Model, inputs: Tensor, target: Target, layer: str) -> LayerPass:
    """Activations of ``layer`` and d target / d activations; the backward stops at the layer, so the forward pass
    builds its graph from the layer's output on (before it, nothing would be differentiated)."""
    net = model.net
    inputs = fast_layout(inputs.detach())
    layers = list(dict.fromkeys([layer, *target.layers]))
    handle = resolve_layer(net, layer)[1].register_forward_hook(_graph_from_here)  # before capture's: it reads this
    try:
        with inspection_mode(net, grad_params=None), capture(net, layers) as store:
            with torch.set_grad_enabled(False):  # until the layer's hook turns it on
                output = net(inputs)
            check_finite_output(output, model.name)
            scores = target(output, store.activations)
            activations = store.activation(layer)
            grads = torch.autograd.grad(scores.sum(), activations, allow_unused=True)[0] \
                if scores.requires_grad else None  # a target read before the layer does not depend on it
    finally:
        handle.remove()
    grads = torch.zeros_like(activations) if grads is None else grads
    kept = output.detach() if isinstance(output, Tensor) else output  # detection models give a list of dicts
    return LayerPass(activations.detach().contiguous(), grads.detach().contiguous(), kept)


def _graph_from_here(module: nn.Module, args: tuple, output: object) -> object:
    """A forward hook: gradients are recorded from here on, starting at a copy of the output that is a leaf."""
    tensor = output[0] if isinstance(output, tuple) and output and isinstance(output[0], Tensor) else output
    if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
        return None
    torch.set_grad_enabled(True)  # for the rest of the pass (the caller's set_grad_enabled restores it)
    leaf = tensor.detach().requires_grad_(True)
    return (leaf, *output[1:]) if isinstance(output, tuple) else leaf


def forward(model: Model, inputs: Tensor, layers: Iterable[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
    """Output and the given layers' activations, without gradients (so the parameters' flags are left as they are)."""
    with inspection_mode(model.net, grad_params=None), capture(model.net, list(layers), detach=True) as store, \
            torch.no_grad():
        output = model.net(fast_layout(inputs))
    check_finite_output(output, model.name)
    return output, {name: value.contiguous() for name, value in store.activations.items()}


def folded_forward(model: Model, inputs: Tensor, layers: Iterable[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`forward` with the batch norms outside ``layers`` folded into their convolutions
    (:func:`~convscope.attribution.batch_norm_folding.norms_folded`): the same values up to rounding, one pass over
    memory fewer; for methods whose cost is this pass."""
    layers = list(layers)
    with inspection_mode(model.net, grad_params=None), norms_folded(model.net, fast_layout(inputs[:1]), layers):
        return forward(model, inputs, layers)


@dataclass(frozen=True)
class RowClasses(Target):
    """The score (or probability) of a given class for every row: copies of an image keep its class."""

    rows: Tensor
    probability: bool = False
    kind: str = "auto"
    region: Region | None = None

    def __call__(self, output: Tensor, activations: object) -> Tensor:
        read = class_probabilities if self.probability else class_scores  # binary, multi-label … as targets read them
        return read(output, self.kind, self.region).to(output.dtype).gather(1, self.rows[:, None])[:, 0]

    def classes(self, output: Tensor) -> Tensor:
        return self.rows


def image_classes(target: Target, output: Tensor) -> Tensor | None:
    """Each image's class under ``target`` (``None`` when it is not a class), from the output on the clean images."""
    classes = target.classes(output)
    return None if classes is None else classes.to(output.device).long()


def copies_target(target: Target, classes: Tensor | None, images: Tensor, *, probability: bool | None = None
                  ) -> Target:
    """The target for a batch of copies, ``images[j]`` being the image copy ``j`` was made from.

    A class target keeps the class found on the clean image (``'top'`` does not move
    to the noisy or occluded copy's own top class); other targets are evaluated per copy.
    ``probability`` forces softmax probabilities (``None``: as the target says).
    """
    if classes is None:
        return target
    soft = isinstance(target, ClassProbability) if probability is None else probability
    return RowClasses(classes[images], soft, getattr(target, "kind", "auto"), getattr(target, "region", None))


def batch_size_for(size: int | None, device: torch.device) -> int:
    """``size``, or the default: 16 inputs per pass on a CPU (cache-friendly), 64 on an accelerator."""
    if size is None:
        return 16 if device.type == "cpu" else 64
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {size!r}")
    return size


def chunks(total: int, size: int, *, description: str, progress: bool | None) -> Iterator[slice]:
    """Slices of ``range(total)`` of at most ``size``; a progress bar once the work takes more than a second."""
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    starts = range(0, total, size)
    log.debug("%s: %d inputs in %d batch(es) of up to %d", description, total, len(starts), size)
    for start in progress_bar(starts, desc=description, unit="batch", delay=1.0, enabled=progress, leave=False):
        yield slice(start, min(start + size, total))


def summed_input_gradients(model: Model, inputs: Tensor, target: Target, copies: int,
                           make: Callable[[Tensor, Tensor, range], Tensor], *, batch_size: int | None,
                           description: str, progress: bool | None) -> Tensor:
    """Σ over ``copies`` per image of the input gradient at ``make(images, copy)``, float32 like ``inputs``.

    Copies of all images are interleaved (pair ``j`` is copy ``j // B`` of image ``j % B``) and
    passed ``batch_size`` at a time; ``make(images, copy, span)`` builds the batch of copies from
    those two index vectors (on the device) and the range of copies they cover (on the host, so
    that nothing waits for the device). A class target keeps each clean image's class
    (SmoothGrad's noisy copies, Integrated Gradients' path points).
    """
    batch = inputs.shape[0]
    classes = image_classes(target, forward(model, inputs)[0])
    total = torch.zeros_like(inputs, dtype=torch.float32)
    pairs = torch.arange(copies * batch, device=inputs.device)
    per_pass = batch_size_for(batch_size, inputs.device)
    for part in chunks(len(pairs), per_pass, description=description, progress=progress):
        images, copy = pairs[part] % batch, pairs[part] // batch
        span = range(part.start // batch, (part.stop - 1) // batch + 1)
        with rows(images):
            grads = input_gradient(model, make(images, copy, span), copies_target(target, classes, images))
        total.index_add_(0, images, grads.float())
    return total
