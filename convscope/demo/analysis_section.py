"""Gallery section: studies of the network (invariance) and checks of its explanations."""

from __future__ import annotations

import torch

from convscope.analysis.invariance import DEFAULT_AMOUNTS, invariance_curves
from convscope.render.gallery import Gallery

SECTION = "Analysis and trust"


def build(gallery: Gallery, context) -> None:
    build_invariance(gallery, context)
    build_sanity(gallery, context)
    build_label_randomisation(gallery, context)
    build_defences(gallery, context)


def build_invariance(gallery: Gallery, context) -> None:
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


DEMO_SANITY_OPTIONS = {"smooth_grad": {"samples": 4}, "integrated_gradients": {"steps": 4},
                       "occlusion": {"size": 36, "stride": 36}}  # a 4×4 grid at 144 px


def build_sanity(gallery: Gallery, context) -> None:
    from convscope.analysis.sanity import sanity_checks
    from convscope.demo.attribution_section import SIDE, small_input_model
    from convscope.render.layout import stack, text_picture, titled

    chelsea = context.photo("chelsea")
    model = small_input_model(context.model)
    result = sanity_checks(model, model.prepare([chelsea.pixels]), options=DEMO_SANITY_OPTIONS, evaluate_every=3)
    result.to_csv(gallery.folder / "sanity_cascading.csv")
    table = titled(text_picture(result.summary(), size=12, monospace=True), "Similarity to the original explanation",
                   "after randomising the top stage, half the network, and all of it")
    gallery.add(SECTION, "sanity_cascading.png", stack([table, result.picture()], direction="vertical", gap=10),
                "Sanity checks: cascading randomisation",
                "Adebayo et al.'s test on the cat photo: the network's stages are re-drawn at random from the top "
                "down and each method explains the same class again. A method whose map stays the same while the "
                "network is destroyed is not explaining the network. As in the paper, guided backprop and deconvnet "
                "hardly change when the top layers are randomised, while saliency and Grad-CAM do. (Demo settings: "
                f"one photo at {SIDE} px, every third stage, SmoothGrad with 4 samples, Integrated Gradients with "
                "4 steps, a coarse occlusion grid; "
                "`convscope check` runs the full version and writes sanity_cascading.csv.)")


def build_label_randomisation(gallery: Gallery, context) -> None:
    from convscope.analysis.label_randomisation import FASHION_OPTIONS, fashion_label_randomisation
    from convscope.data import has_fashion_mnist
    from convscope.render.layout import stack, text_picture, titled

    if not has_fashion_mnist():
        return  # the feature-space section already says how to install it
    result = fashion_label_randomisation(options=DEMO_SANITY_OPTIONS | FASHION_OPTIONS,  # occlusion for 28 px
                                         device=context.model.device)
    table = titled(text_picture(result.summary(), size=12, monospace=True),
                   "Similarity of the two models' explanations", "mean over one training picture per class")
    gallery.add(SECTION, "sanity_data_randomisation.png", stack([table, result.picture()], direction="vertical",
                                                                gap=10),
                "Sanity checks: data randomisation",
                DATA_RANDOMISATION_CAPTION)


DATA_RANDOMISATION_CAPTION = (
    "Adebayo et al.'s second test: the Fashion-MNIST CNN trained on 1 000 pictures with their true labels, and "
    "again on the same pictures with the labels permuted at random, which it can only memorise (98.9 % and "
    "96.8 % training accuracy; 83 % and 9 % on the test set). Each method explains the true class of the same "
    "pictures under both; a map that does not change did not depend on what the labels taught the network. "
    "Here Grad-CAM, occlusion, saliency and SmoothGrad change (mean Spearman 0.2 or less), while guided "
    "backprop (0.78) and Integrated Gradients (0.85) stay close to the picture's outline whatever the labels "
    "were, as the paper found. CAM does not apply: this network has no global average pooling.")


DEFENCE_PICTURES, DEFENCE_EPSILONS, DEFENCE_STEPS = 64, (0.0, 0.1, 0.2), 3  # `convscope defences`: 500, PGD-20


def build_defences(gallery: Gallery, context) -> None:
    from convscope.analysis.defence_runs import group_runs
    from convscope.analysis.defences import defence_table, labelled_pixels
    from convscope.data import has_fashion_mnist
    from convscope.models.defence_weights import SHIPPED_DEFENCES

    if not has_fashion_mnist():
        return
    groups = group_runs([SHIPPED_DEFENCES], str(context.model.device))
    pixels, labels = labelled_pixels("fashion-mnist:test", DEFENCE_PICTURES, next(iter(groups.values()))[0])
    table = defence_table(groups, pixels, labels, DEFENCE_EPSILONS, steps=DEFENCE_STEPS)
    gallery.add(SECTION, "defences.png", table.picture(), "The lecture's trained defences under attack",
                "Small Fashion-MNIST CNNs shipped with convscope, trained plainly, on noisy pictures, on adversarial "
                "pictures and with representation matching (three seeds each, ± std), under FGSM and PGD — the "
                "attack adapted to a trained defence is PGD on the defended model itself. Only adversarial training "
                "holds up. `convscope defences fashion_defences --smooth-input 1 --noise-input 0.2` adds the input "
                "defences under transfer vs BPDA and one draw vs EOT (Athalye et al. 2018). Demo settings: "
                f"{DEFENCE_PICTURES} test pictures, PGD-{DEFENCE_STEPS} (the command: 500, PGD-20).")
