"""Regenerate the pictures of docs/synthesis.md (CPU: about half an hour; a GPU: about a minute).

    python docs/synthesis_figures.py [--only NAME ...] [--device cuda]

Every setting used here is written next to its picture in docs/synthesis.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import convscope
from convscope.images import load_sample
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

OUT = Path(__file__).parent / "synthesis"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "china", "flower")


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def class_models(model):
    classes = ["tabby", "goldfish", "flamingo", "pineapple"]
    for recipe in ("simonyan", "fourier"):
        result = class_model(model, classes, recipe=recipe, generator=seeded())
        print("\n".join(result.lines()))
        result.picture(tile_size=224, columns=4).save(OUT / f"class_models_{recipe}.png")


def features(model):
    rows = []
    for layer, channels in (("blocks.2", [0, 5, 11, 20]), ("blocks.4", [0, 7, 20, 33]), ("blocks.6", [1, 9, 40, 77])):
        rows.append(visualise_features(model, layer, channels, size=128, generator=seeded()).picture(columns=4))
    stack(rows, direction="vertical", gap=8).save(OUT / "features.png")


def facets(model):
    pool = crop_pool([load_sample(n) for n in PHOTOS], 96)
    result = multifaceted(model, "blocks.5", 12, pool, facets=3, generator=seeded())
    result.picture(tile_size=112).save(OUT / "facets.png")


def inversion(model):
    result = invert(model, load_sample("chelsea"), ["bn1", "blocks.1", "blocks.2", "blocks.3", "blocks.5", "bn2"],
                    size=160, generator=seeded())
    print("\n".join(result.lines()))
    result.picture(tile_size=160).save(OUT / "inversion.png")


def deepdream(model):
    pictures = [dream(model, load_sample("coffee"), layer, size=224, generator=seeded()).picture(tile_size=280)
                for layer in ("blocks.3", "blocks.5")]
    stack(pictures, direction="vertical", gap=8).save(OUT / "dream.png")


def fooling(model):
    photos = [load_sample("chelsea"), load_sample("rocket")]
    targeted = fool(model, photos, "goldfish", generator=seeded())
    print("\n".join(targeted.lines()))
    targeted.picture().save(OUT / "fool_targeted.png")
    untargeted = [fgsm(model, photos, 2 / 255), pgd(model, photos, 2 / 255, steps=20, generator=seeded())]
    for result in untargeted:
        print("\n".join(result.lines()))
    stack([r.picture(tile_size=160) for r in untargeted], gap=16).save(OUT / "fool_untargeted.png")


def textures(model):
    sources = {name: resize_short_side(load_sample(name), 128)[:, :128, :128] for name in ("brick", "grass", "gravel")}
    sources["chelsea"] = resize_short_side(load_sample("chelsea"), 128)[:, :128, :128]
    naive = ("blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4")
    rows = []
    for name, source in sources.items():
        variants = [
            ("plain Gram, stage outputs", gram_texture(model, source, layers=naive, smoothing="none", colour_weight=0,
                                                       parameterisation="pixels", lr=0.02, jitter=0, steps=300,
                                                       generator=seeded())),
            ("+ softmax smoothing", gram_texture(model, source, layers=naive, smoothing="softmax", colour_weight=0,
                                                 parameterisation="pixels", lr=0.02, jitter=0, steps=300,
                                                 generator=seeded())),
            ("default + softmax", gram_texture(model, source, smoothing="softmax", steps=300, generator=seeded())),
            ("convscope default", gram_texture(model, source, steps=300, generator=seeded())),
        ]
        for label, result in variants:
            print(name, label, result.summary())
        tiles = torch.stack([source] + [r.images[0] for _, r in variants])
        rows.append(grid(tiles, labels=[f"{name} (source)"] + [label for label, _ in variants], tile_size=160,
                         columns=5))
    titled(stack(rows, direction="vertical", gap=4), "Gram textures on EfficientNet-Lite0",
           "300 Adam steps at 128 px").save(OUT / "textures_gram.png")
    tiles, labels = [], []
    for name in ("brick", "grass", "gravel"):
        small = resize_short_side(load_sample(name), 64)
        result = efros_leung(small, 96, window=11, generator=seeded())
        print(name, f"Efros-Leung {result.seconds:.1f} s, mean error {result.mean_error:.4f}")
        tiles += [F.pad(small, (16, 16, 16, 16), value=1.0), result.image]
        labels += [f"{name} 64 px", "Efros–Leung 96 px"]
    grid(torch.stack(tiles), labels=labels, tile_size=160, columns=6).save(OUT / "textures_efros_leung.png")


def style(model):
    pairs = [("chelsea", "immunohistochemistry"), ("astronaut", "brick"), ("coffee", "hubble_deep_field")]
    pictures = []
    for content, painting in pairs:
        result = style_transfer(model, load_sample(content), load_sample(painting), size=224, generator=seeded())
        print(content, painting, result.summary())
        pictures.append(result.picture(tile_size=200))
    stack(pictures, direction="vertical", gap=8).save(OUT / "style.png")


def fast_style(model):
    contents = [load_sample(n) for n in PHOTOS]
    trained = train_fast_style(model, load_sample("immunohistochemistry"), contents[1:], size=128, steps=400,
                               batch=4, width=16, generator=seeded())
    shown = torch.stack([resize_short_side(load_sample(n), 160)[:, :160, :160] for n in ("chelsea", "astronaut")])
    trained.picture(shown, tile_size=200).save(OUT / "fast_style.png")


FIGURES = {"class_models": class_models, "features": features, "facets": facets, "inversion": inversion,
           "dream": deepdream, "fooling": fooling, "textures": textures, "style": style, "fast_style": fast_style}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FIGURES))
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    model = convscope.load_model(device=args.device)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or FIGURES:
        began = time.perf_counter()
        FIGURES[name](model)
        print(f"{name}: {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
