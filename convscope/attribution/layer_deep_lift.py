"""Layer DeepLIFT (Shrikumar, Greenside & Kundaje 2017, https://arxiv.org/abs/1704.02685), at a layer."""

from __future__ import annotations

from torch import Tensor, nn

from convscope.attribution.deep_lift import deep_lift
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.attribution.layer_path import ActivationAttribution
from convscope.models.model import Model
from convscope.models.tokens import Reshape
from convscope.targets import Target


class LayerDeepLift(ActivationAttribution):
    """``(A(x) − A(x')) ⊙ m``: DeepLIFT's multipliers at the layer times the change of its activations, ``[B,C,h,w]``.

    The rules of :class:`~convscope.attribution.DeepLift` (rescale, Captum's max-pool rule, gradients
    through linear layers), and its refusals; the attributions add up to ``S(x) − S(x')``, checked on
    every call. ``baseline`` as there. Equal to Captum's ``LayerDeepLift``.
    """

    name = "layer_deep_lift"
    title = "Layer DeepLIFT"
    paper = "https://arxiv.org/abs/1704.02685"

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *,
                 baseline: str | float | Tensor = "black", reshape: Reshape | None = None) -> None:
        super().__init__(model, layer, reshape=reshape)
        self.baseline = baseline

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        baseline = baseline_tensor(self.baseline, inputs, self.model)
        attributions = deep_lift(self.model, inputs, baseline, target, self.title, self.layer(inputs))
        (maps,) = self.feature_maps(inputs, attributions)
        return maps
