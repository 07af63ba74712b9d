"""Gallery section: class models, feature visualisation, facets, inversion, DeepDream, fooling,
textures, style transfer and fast style transfer — each on a small budget (the library defaults
are larger; the captions give the settings)."""

from __future__ import annotations

import torch

from convscope.images import load_sample
from convscope.render.gallery import Gallery
from convscope.render.layout import grid, stack, titled
from convscope.synthesis import (
    class_model,
    crop_pool,
    dream,
    efros_leung,
    fgsm,
    fool,
    gram_texture,
    invert,
    multifaceted,
    pgd,
    style_transfer,
    train_fast_style,
    visualise_features,
)
from convscope.synthesis.texture import resize_short_side

SECTION = "Synthesis: images the network makes"


def build(gallery: Gallery, context) -> None:
    model, photos = context.model, context.photos

    def seeded() -> torch.Generator:
        return torch.Generator().manual_seed(int(torch.randint(2**31 - 1, (1,), generator=context.generator)))

    classes = class_model(model, ["goldfish", "flamingo", "pineapple"], size=128, steps=100, generator=seeded(),
                          progress=context.progress)
    gallery.add(SECTION, "synthesis_class_models.png", classes.picture(tile_size=192), "Class models",
                "arg max S_c(I) + log p_c(I) − 3·10⁻⁵‖I‖² (Simonyan et al.'s class model; log p_c keeps the "
                "neighbouring classes down) on a decorrelated Fourier image with random jitter, scaling and "
                f"rotation, 100 Adam steps at 128 px. Final probabilities: {_joined(classes.lines())}.")

    features = visualise_features(model, "blocks.4", [0, 7, 20, 33], size=96, steps=96, generator=seeded(),
                                  progress=context.progress)
    gallery.add(SECTION, "synthesis_features.png", features.picture(tile_size=160, columns=4),
                "Feature visualisation", "Four channels of blocks.4 (the mean over positions), decorrelated "
                "Fourier parameterisation with jitter, scaling and rotation; 96 steps at 96 px.")

    pool = crop_pool([p.pixels for p in photos], 64, scales=(1.0, 0.5))
    facets = multifaceted(model, "blocks.5", 12, pool, facets=2, top=10, steps=60, generator=seeded(),
                          progress=context.progress)
    gallery.add(SECTION, "synthesis_facets.png", facets.picture(tile_size=96), "Multifaceted visualisation",
                f"Channel 12 of blocks.5 ranked over {len(pool)} crops of the six photos; its 10 top crops, "
                "clustered by their blocks.5 activations (PCA, k-means), give two facets; each facet starts "
                "from its cluster's mean picture (60 steps at 64 px).")

    chelsea = context.photo("chelsea").pixels
    inversion = invert(model, chelsea, ["bn1", "blocks.1", "blocks.2", "blocks.3", "blocks.5"], size=96,
                       steps=100, generator=seeded(), progress=context.progress)
    gallery.add(SECTION, "synthesis_inversion.png", inversion.picture(tile_size=128), "Feature inversion",
                "Reconstructions of the cat from its features at five depths (Mahendran & Vedaldi: normalised "
                f"Euclidean loss + 0.05·TV², from noise; 100 steps at 96 px). {_joined(inversion.lines())}.")

    dreamed = dream(model, context.photo("coffee").pixels, "blocks.3", size=160, octaves=3, steps=8,
                    generator=seeded(), progress=context.progress)
    gallery.add(SECTION, "synthesis_dream.png", dreamed.picture(tile_size=256), "DeepDream",
                "The coffee photo with blocks.3's activations amplified: ½‖a‖² ascended with normalised steps "
                "and random shifts, three octaves of 8 steps from 82 to 160 px.")

    pair = [context.photo("chelsea").pixels, context.photo("rocket").pixels]
    fooled = fool(model, pair, "goldfish", steps=40, generator=seeded(), progress=context.progress)
    untargeted = fgsm(model, pair, 2 / 255)
    projected = pgd(model, pair, 2 / 255, steps=10, generator=seeded(), progress=context.progress)
    gallery.add(SECTION, "synthesis_fooling.png", fooled.picture(), "Fooling images: targeted",
                "Targeted PGD (L∞ ε = 2/255, steps of ε/8, stop at p ≥ 0.99) turns both photos into 'goldfish'. "
                f"{_joined(fooled.lines())}.")
    gallery.add(SECTION, "synthesis_fgsm_pgd.png", stack([untargeted.picture(tile_size=128),
                                                         projected.picture(tile_size=128)], gap=16),
                "Fooling images: FGSM and PGD (untargeted)",
                f"{_joined(untargeted.lines())}. {_joined(projected.lines())}.")

    brick = resize_short_side(load_sample("brick"), 96)
    texture = gram_texture(model, brick, steps=160, generator=seeded(), progress=context.progress)
    small = resize_short_side(load_sample("brick"), 48)
    sampled = efros_leung(small, 64, window=9, pixels_per_round=32, generator=seeded(), progress=context.progress)
    sampled_picture = titled(grid(torch.stack([torch.nn.functional.pad(small, (8, 8, 8, 8), value=1.0),
                                               sampled.image]), labels=["source 48 px", "Efros–Leung 64 px"],
                                  tile_size=192), "Texture synthesis (Efros–Leung)",
                             f"window 9, mean window error {sampled.mean_error:.4f}, {sampled.seconds:.1f} s")
    gallery.add(SECTION, "synthesis_texture.png", stack([texture.picture(tile_size=192), sampled_picture], gap=16),
                "Texture synthesis", f"Neural (Gatys et al.) at 96 px, 160 steps: Gram matrices of the rectified "
                                     "stem and expansion layers plus the source's colour statistics, on a Fourier "
                                     f"image with circular jitter — {texture.summary()}. Right: Efros & Leung's "
                                     "non-parametric sampling, pixel by pixel from matching neighbourhoods.")

    styled = style_transfer(model, context.photo("chelsea").pixels, load_sample("gravel"), size=128, steps=80,
                            generator=seeded(), progress=context.progress)
    gallery.add(SECTION, "synthesis_style.png", styled.picture(tile_size=192), "Neural style transfer",
                f"Gatys et al. at 128 px, 80 Adam steps from the content: {styled.summary()}.")

    contents = [p.pixels for p in photos]
    fast = train_fast_style(model, load_sample("immunohistochemistry"), contents, size=64, steps=80, batch=2, width=8,
                            generator=seeded(), progress=context.progress)
    shown = torch.stack([resize_short_side(context.photo(n).pixels, 128)[:, :128, :128] for n in ("coffee", "rocket")])
    gallery.add(SECTION, "synthesis_fast_style.png", fast.picture(shown, tile_size=160), "Fast style transfer",
                "A small transform network (width 8) trained for only 80 steps of 2 crops at 64 px "
                "(the library default is 2000 steps of 4 at 256 px), then applied to new photos in one pass.")


def _joined(lines: list[str]) -> str:
    return "; ".join(line.strip() for line in lines)
