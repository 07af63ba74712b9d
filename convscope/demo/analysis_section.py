"""Gallery section: studies of the network (invariance) and checks of its explanations."""

from __future__ import annotations

import torch

from convscope.analysis.invariance import DEFAULT_AMOUNTS, invariance_curves
from convscope.render.gallery import Gallery

SECTION = "Analysis and trust"


def build(gallery: Gallery, context) -> None:
    photos = [context.photo(name) for name in ("chelsea", "coffee", "flower")]
    for kind in ("translate", "scale", "rotate"):
        full = DEFAULT_AMOUNTS[kind]
        amounts = full[:: max(1, len(full) // 8)] if kind == "rotate" else full[::2]  # fewer steps in the demo
        curves = invariance_curves(context.model, [p.pixels for p in photos], kind, amounts=torch.as_tensor(amounts),
                                   names=[p.name for p in photos])
        gallery.add(SECTION, f"invariance_{kind}.png", curves.picture(), f"Invariance to {kind}",
                    "As in Zeiler & Fergus' Fig. 5: relative distance between the features of the original and the "
                    "transformed photo at the first convolution and at the classifier's input, and the probability "
                    "of the originally predicted class. The first layer's features change abruptly with any "
                    "change; the top layer's change more gradually, and the class probability mostly holds under "
                    "translation and scaling but not under rotation, except for round objects (the espresso cup, "
                    "the flower).")
