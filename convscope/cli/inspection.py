"""predict, layers, filters, activations, stats."""

from __future__ import annotations

import argparse

from convscope.cli.common import add_model_options, model_from, written
from convscope.cli.output_names import output_name, picture_source, settings
from convscope.images import expand_sources, load_images
from convscope.inspection import activation_maps_batch, filters, layer_statistics, predict
from convscope.models.layers import describe_layers
from convscope.targets import parse_target


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("predict", help="top-k classes with probabilities")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME (e.g. sample:chelsea)")
    p.add_argument("-k", type=int, default=5, help="how many classes (default: %(default)s)")
    add_model_options(p)
    p.set_defaults(run=run_predict)

    p = commands.add_parser("layers", help="list the model's layers with output shapes")
    add_model_options(p)
    p.set_defaults(run=run_layers)

    p = commands.add_parser("filters", help="picture of a convolution's filters")
    p.add_argument("--layer", help="a convolution's dotted name (default: the first)")
    p.add_argument("--max-channels", type=int, default=64, dest="max_filters",
                   help="show the first N filters (output channels) (default: %(default)s)")
    add_model_options(p)
    p.set_defaults(run=run_filters)

    p = commands.add_parser("activations", help="every channel's activation map for an image at a layer")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME")
    p.add_argument("--layer", required=True, help="dotted layer name (see `convscope layers`)")
    p.add_argument("--max-channels", type=int, default=64,
                   help="show the first N channels (default: %(default)s)")
    add_model_options(p)
    p.set_defaults(run=run_activations)

    p = commands.add_parser("stats", help="per-layer statistics of activations, gradients and weights")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME (one batch)")
    p.add_argument("--target", help="class index or name, 'top', channel:LAYER:C or neuron:LAYER:C[:Y:X]")
    p.add_argument("--layers", nargs="*", help="layers to show in the figure (default: 8 spread over the depth)")
    add_model_options(p)
    p.set_defaults(run=run_stats)


def run_predict(args: argparse.Namespace) -> None:
    model = model_from(args)
    pictures = load_images(args.images)
    result = predict(model, [p.pixels for p in pictures], k=args.k)
    for b, picture in enumerate(pictures):
        print(f"{picture.name}:")
        for line in result.lines(b):
            print(f"  {line}")


def run_layers(args: argparse.Namespace) -> None:
    model = model_from(args)
    height, width = model.preprocess.input_size
    example = model.prepare([__import__("torch").zeros(model.preprocess.channels, height, width)])
    print(f"{model.name}: input {model.preprocess.channels}×{height}×{width}")
    print(f"{'layer':<40} {'type':<22} {'output':<16} parameters")
    for info in describe_layers(model.net, example):
        shape = "×".join(map(str, info.output_shape)) if info.output_shape else "-"
        depth = info.name.count(".")
        print(f"{'  ' * depth}{info.name:<{max(1, 40 - 2 * depth)}} {info.kind:<22} {shape:<16} "
              f"{info.parameters or ''}")


def run_filters(args: argparse.Namespace) -> None:
    model = model_from(args)
    view = filters(model, args.layer)
    name = output_name("filters", model.name, view.layer, identity=settings(args))
    path = view.picture(max_filters=args.max_filters).save(args.out / name)
    written(path)


def run_activations(args: argparse.Namespace) -> None:
    model = model_from(args)
    sources = expand_sources(args.images)
    pictures = load_images(sources)
    common = settings(args, leave_out=("images",))
    for source, picture, maps in zip(sources, pictures,
                                     activation_maps_batch(model, [p.pixels for p in pictures], args.layer),
                                     strict=True):
        identity = {**common, "picture": picture_source(source)}
        path = maps.picture(max_channels=args.max_channels).save(
            args.out / output_name("activations", picture.name, maps.layer, identity=identity))
        written(path)
        print(f"  {picture.name}: {maps.summary}")


def run_stats(args: argparse.Namespace) -> None:
    model = model_from(args)
    sources = expand_sources(args.images)
    pictures = load_images(sources)
    target = parse_target(args.target, model)
    stats = layer_statistics(model, [p.pixels for p in pictures], target)
    print("\n".join(stats.lines()))
    shown = pictures[0].name if len(pictures) == 1 else f"{len(pictures)}images"
    identity = {**settings(args, leave_out=("images",)), "pictures": [picture_source(s) for s in sources]}
    picture = stats.picture(args.layers)  # an unknown layer fails here, before anything is written
    written(stats.to_csv(args.out / output_name("stats", shown, args.target, identity=identity, ext="csv")))
    written(picture.save(args.out / output_name("stats", shown, args.target, identity=identity)))
