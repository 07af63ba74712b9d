"""A user's script: the README's tour and the three tutorials, as written there, for `mypy --strict`.

Never run (tests/test_typing.py type-checks it); each block names where it comes from. Lines that only change
the container (a tuple where the README has a list, a read-only mapping) are what users write too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping

import torch

import convscope as cs
from convscope.data import FashionMNIST, FirstPictures
from convscope.scan import Scan
from convscope.synthesis import objectives as obj
from convscope.synthesis import params, transforms
from convscope.synthesis import regularisers as reg


def readme_tour() -> None:
    model = cs.load_model()
    cat, cup = cs.load_image("sample:chelsea"), cs.load_image("sample:coffee")
    cs.predict(model, [cat, cup], k=3)
    cs.explain(model, [cat, cup], "grad_cam", ["tabby", "espresso"])
    cs.explain(model, (cat, cup), "grad_cam", ("tabby", "espresso"))
    cs.class_model(model, ["goldfish", "flamingo"]).picture()
    cs.class_model(model, ("goldfish", "flamingo")).picture()


def attribution_on_your_model() -> None:
    model = cs.load_model(device="cpu")
    cat, cup = cs.load_image("sample:chelsea"), cs.load_image("sample:coffee")
    result = cs.explain(model, [cat, cup], "grad_cam", ["tabby", "espresso"])
    print(tuple(result.maps.shape), tuple(result.heat.shape))
    cs.compare(model, [cat], methods=["saliency", "guided_backprop", "grad_cam", "grad_cam_plus_plus", "layer_cam"],
               target="tabby", tile_size=128)
    options: Mapping[str, Mapping[str, object]] = {"grad_cam": {"layer": "blocks.5"}}
    cs.compare(model, (cat,), methods=("saliency", "grad_cam"), target="tabby", options=options)

    net = cs.load_model("fashion_cnn", device="cpu").net
    print([name for name, _ in net.named_children()])
    mine = cs.Model(net, preprocess=cs.Preprocess(resize=28, crop=28, mean=(0.286,), std=(0.353,), channels=1),
                    class_names=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], name="my_fashion_cnn")
    test = FashionMNIST(split="test")
    clothes = [test.picture(i) for i in (0, 1, 2, 8)]
    cs.predict(mine, clothes, k=2)
    cs.explain(mine, clothes[:2], "grad_cam", layer="relu3")
    inputs = mine.prepare(clothes)
    maps = cs.GuidedBackprop(mine)(inputs, "top")
    one_by_one = torch.cat([cs.GuidedBackprop(mine)(inputs[i:i + 1], "top") for i in range(len(clothes))])
    print(tuple(maps.shape), float((maps - one_by_one).abs().max()))
    checks = cs.sanity_checks(mine, inputs, ["saliency", "guided_backprop", "grad_cam"])
    print("\n".join(checks.summary()))
    checks.picture()


def scanning_a_data_set() -> None:
    model = cs.load_model("fashion_cnn", device="cpu")
    pictures = FirstPictures(FashionMNIST(split="test"), 1000)
    work = tempfile.mkdtemp()
    result = Scan(model, ["relu1", "relu2", "relu3", "relu7"], k=9).run(pictures, work, progress=True)
    print(result.count, {layer: tuple(result.features(layer).shape) for layer in result.layers})
    result.top_patches("relu2", channels=range(8)).picture()
    result.top_patches("relu3", channels=range(4), k=6).picture(context=True)
    dead = result.dead_filters("relu7")
    print("\n".join(dead.lines()[:3]))
    result.neighbors([0, 1], "relu7", k=6).picture()
    result.neighbors((0, 1), "relu7", k=6).picture()
    embedding = result.embed("relu7", method="tsne")
    embedding.scatter()
    embedding.grid_picture(side=16, tile_size=28)


def synthesis() -> None:
    model = cs.load_model(device="cpu")
    generator = torch.Generator().manual_seed(0)
    classes = cs.class_model(model, ["goldfish", "flamingo"], size=96, steps=64, generator=generator)
    print("\n".join(classes.lines()))
    classes.picture(tile_size=160)
    goal = obj.channel("blocks.4", 17) - 1e-3 * reg.total_variation()
    run = cs.optimise(model, goal, params.fourier(64, generator=generator), transforms=transforms.STANDARD,
                      steps=64, generator=generator, snapshots=16)
    print(f"objective {-float(run.losses[0, 0]):.2f} → {-float(run.losses[-1, 0]):.2f}")
    run.picture(tile_size=192)
    cat = cs.load_image("sample:chelsea")
    inversion = cs.invert(model, cat, ["blocks.1", "blocks.3"], size=64, steps=80, generator=generator)
    print("\n".join(inversion.lines()))
    inversion.picture(tile_size=128)
    fooled = cs.fool(model, [cat], "goldfish", steps=30, generator=generator)
    print("\n".join(fooled.lines()))
    fooled.picture()
