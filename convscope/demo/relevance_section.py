"""Relevance and concepts: LRP composites, the channels that carried the relevance (CRP) and TCAV."""

from __future__ import annotations

import torch

from convscope.analysis.tcav import tcav
from convscope.attribution.concept_figure import concepts_figure
from convscope.attribution.concepts import concept_relevance
from convscope.attribution.explain import explain, render_map
from convscope.attribution.lrp import LRP
from convscope.data.concept_textures import concept_pictures, random_sets
from convscope.render.gallery import Gallery
from convscope.render.layout import grid, titled
from convscope.render.overlay import rgb

SECTION = "Relevance and concepts"
COMPOSITES = ("epsilon-plus-flat", "epsilon-alpha2-beta1")
CONCEPT_LAYER = "blocks.4"
TCAV_CONCEPTS = ("stripes", "dots", "red")
TCAV_TARGETS = ("zebra", "tabby")
PER_SET, RUNS = 10, 10  # demo-sized: `convscope tcav` draws 30 pictures per set


def build(gallery: Gallery, context) -> None:
    build_lrp(gallery, context)
    build_concepts(gallery, context)
    build_tcav(gallery, context)


def build_lrp(gallery: Gallery, context) -> None:
    model, chelsea = context.model, context.photo("chelsea").pixels
    found = [explain(model, chelsea, LRP(model, composite), "tabby") for composite in COMPOSITES]
    tiles = torch.stack([rgb(found[0].pictures[0]).float().cpu(),
                         *(render_map(e.method.style, e.maps[0], e.heat[0]).float().cpu() for e in found)])
    body = grid(tiles, columns=len(tiles), labels=["input", *COMPOSITES], tile_size=200)
    gallery.add(SECTION, "lrp_composites.png", titled(body, "LRP for 'tabby', two composites",
                                                      "Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140"),
                "Layer-wise relevance propagation", "Relevance of each pixel for 'tabby' under two of Zennit's "
                "composites (red: for, blue: against). Batch norms are folded into copies of the convolutions and "
                "residual sums split in proportion, so the relevance is conserved layer by layer.")


def build_concepts(gallery: Gallery, context) -> None:
    model, chelsea = context.model, context.photo("chelsea").pixels
    fitted = model.preprocess.fit([chelsea]).to(model.device)
    found = concept_relevance(model, model.preprocess.normalize(fitted), "tabby", CONCEPT_LAYER, top=4)
    gallery.add(SECTION, "concept_relevance.png", concepts_figure(found, fitted[0], "tabby"),
                "Concept relevance (CRP): the channels that carried 'tabby'",
                f"The four channels of {CONCEPT_LAYER} through which most of the LRP relevance for 'tabby' flowed, "
                "each with its conditional heat map: where in the picture that channel's share came from "
                "(Achtibat et al. 2023). `convscope concepts --scan` adds each channel's top patches by relevance "
                "and by activation.")


def build_tcav(gallery: Gallery, context) -> None:
    model = context.model
    concepts = {name: concept_pictures(name, PER_SET, seed=0) for name in TCAV_CONCEPTS}
    classes = [model.classes().index(name) for name in TCAV_TARGETS]
    result = tcav(model, concepts, random_sets(RUNS + 1, PER_SET, seed=0), [p.pixels for p in context.photos],
                  CONCEPT_LAYER, classes)
    note = "concepts are generated textures and colour patches, random sets crops of the bundled photos"
    gallery.add(SECTION, "tcav.png", result.figure(note), "TCAV: do stripes matter to 'zebra'?",
                f"Testing with concept activation vectors (Kim et al. 2018) at {CONCEPT_LAYER}: the share of the "
                f"{len(context.photos)} demo photos whose class logit grows along each concept's direction, against "
                f"{RUNS} random directions (grey); a star marks a difference significant after Bonferroni. The "
                "concepts are generated offline stand-ins, not curated sets, and none of the photos is a zebra. "
                f"Demo settings: {PER_SET} pictures per set (the command's default: 30).")
