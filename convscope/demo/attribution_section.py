"""Gallery section: every attribution method side by side, the occlusion maps, one method up close."""

from __future__ import annotations

import dataclasses

import torch

from convscope.attribution import Occlusion, compare, explain
from convscope.attribution.feature_projection import occlusion_projection
from convscope.attribution.figures import occlusion_figure
from convscope.models.model import Model
from convscope.models.preprocessing import Preprocess
from convscope.render.gallery import Gallery

SECTION = "Attribution"
PHOTOS = ("chelsea", "coffee")
SIDE = 144  # the demo's input size: every method costs ~2.4× more at the model's 224
QUICK = {"smooth_grad": {"samples": 16}, "integrated_gradients": {"steps": 16},
         "occlusion": {"size": 36, "stride": 18}}
# The figure's methods: the classic twelve (all of convscope.attribution.METHODS would not fit its time and width).
MORE = ("input_x_gradient", "deep_lift", "hires_cam", "xgrad_cam", "eigen_cam", "shapley_cam", "finer_cam",
        "layer_gradient_x_activation", "lrp")
SHOWN = ("occlusion", "saliency", "deconvnet", "guided_backprop", "cam", "grad_cam", "guided_grad_cam", "smooth_grad",
         "integrated_gradients", "grad_cam_plus_plus", "layer_cam", "score_cam")


def small_input_model(base: Model) -> Model:
    """The gallery's model fed ``SIDE``-px crops (same weights): demo figures that run many passes use it."""
    return dataclasses.replace(base, preprocess=Preprocess(
        resize=round(SIDE * 256 / 224), crop=SIDE, mean=base.preprocess.mean, std=base.preprocess.std,
        interpolation=base.preprocess.interpolation))


def build(gallery: Gallery, context) -> None:
    model = small_input_model(context.model)
    photos = [context.photo(name) for name in PHOTOS]
    pictures = [p.pixels for p in photos]
    with torch.no_grad():
        top = model.net(model.prepare(pictures)).argmax(1).tolist()
    targets = [model.class_index("tabby") if p.name == "chelsea" else top[i] for i, p in enumerate(photos)]
    figure = compare(model, pictures, SHOWN, target=targets, names=[p.name for p in photos], options=QUICK,
                     tile_size=150)
    gallery.add(SECTION, "attribution_all_methods.png", figure, "The classic attribution methods, side by side",
                f"{model.name} at {SIDE}×{SIDE} px explaining 'tabby' for the cat and its top class for the coffee "
                "photo. Occlusion, CAM and the CAM family (Grad-CAM, Grad-CAM++, LayerCAM, Score-CAM) are heat "
                "maps over the image; saliency, SmoothGrad and Integrated Gradients show gradient magnitudes; "
                "guided backprop, guided Grad-CAM and the deconvnet are signed gradient images (grey = 0). "
                "CAM and Grad-CAM are the same map here, as they must be on a network that ends in global "
                "average pooling and one linear layer. The deconvnet's picture is the same for every photo: "
                "nothing in its backward pass looks at the image except max-pooling switches, and "
                "EfficientNet-Lite has no max-pooling — what is left is the grid of its strided convolutions. "
                f"Demo settings: SmoothGrad {QUICK['smooth_grad']['samples']} samples, Integrated Gradients "
                f"{QUICK['integrated_gradients']['steps']} steps (library defaults: 50).")
    figure = compare(model, pictures, MORE, target=targets, names=[p.name for p in photos], tile_size=150)
    gallery.add(SECTION, "attribution_more_methods.png", figure, "More methods: Captum's and pytorch-grad-cam's",
                "The same photos and classes with methods from the two reference libraries, each checked equal to "
                "its reference: input × gradient and DeepLIFT (Captum), HiResCAM, XGrad-CAM, Eigen-CAM (class-"
                "independent: the first principal component of bn2), Shapley-CAM (equal to Grad-CAM here: "
                "everything after bn2 is piecewise linear and the target is a logit), Finer-CAM (what sets the "
                "class apart from its most similar classes), Layer Gradient × Activation, and LRP "
                "(epsilon-plus-flat). `convscope explain --method all` runs every one of the 36.")

    astronaut = model.preprocess.fit([context.photo("astronaut").pixels]).to(model.device)
    size, stride = QUICK["occlusion"]["size"], QUICK["occlusion"]["stride"]
    found = Occlusion(model, size=size, stride=stride).maps(model.preprocess.normalize(astronaut), None, layer="bn2")
    assert found.classes is not None, "no target: the top class"
    named = model.classes()[int(found.classes[0])]
    projection = occlusion_projection(model, astronaut, found)
    gallery.add(SECTION, "occlusion_maps.png", occlusion_figure(found, astronaut[0], model.classes(),
                                                                projection=projection),
                "Occlusion: the three maps of Zeiler & Fergus",
                f"A grey square slides over the photo. (a) The probability of the top class, '{named}', with the "
                "square at each place: where it collapses lies the evidence. (b) The most probable class at each "
                "place, with its legend. (c) The total activation of the strongest feature map of the last layer "
                "(bn2) on the unoccluded photo; beside the input, that map projected to pixels with "
                f"{projection[1] if projection else 'the deconvnet'}"
                + (" (the deconvnet's projection is the same for every picture on a network without max-pooling)."
                   if projection and projection[1] != "deconvnet" else "."))

    chelsea = explain(model, context.photo("chelsea").pixels, "grad_cam", "tabby")
    gallery.add(SECTION, "grad_cam_tabby.png", chelsea.picture(), "Grad-CAM for 'tabby'",
                "The raw Grad-CAM map at bn2 (5×5 at this input size), ReLU'd and upsampled bilinearly, over the cat.")


