"""explain: which pixels made the network say what it said."""

from __future__ import annotations

import argparse

from convscope.attribution import METHODS, compare, explain
from convscope.cli.common import add_model_options, model_from, slug, written
from convscope.images import load_images
from convscope.targets import parse_target


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("explain", help="attribution maps: which pixels made the decision",
                            description="Write the map and an overlay for one method, or with --method all a figure "
                                        "of every method side by side.")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME (e.g. sample:chelsea)")
    p.add_argument("--method", default="grad_cam", choices=[*METHODS, "all"], metavar="METHOD",
                   help="one of " + ", ".join(METHODS) + ", or all (default: %(default)s)")
    p.add_argument("--target", help="class index or name, 'top' (default), channel:LAYER:C or neuron:LAYER:C[:Y:X]")
    p.add_argument("--layer", help="layer for CAM-type methods, and the feature map layer of occlusion "
                                   "(default: the last feature map, bn2 on EfficientNet-Lite)")
    p.add_argument("--size", type=int, help="occluder size in pixels (default 32)")
    p.add_argument("--stride", type=int, help="occluder stride in pixels (default 16)")
    p.add_argument("--steps", type=int, help="Integrated Gradients steps (default 50)")
    p.add_argument("--samples", type=int, help="SmoothGrad samples (default 50)")
    p.add_argument("--batch-size", type=int, help="inputs per forward pass for occlusion, SmoothGrad, "
                                                  "Integrated Gradients and Score-CAM")
    add_model_options(p)
    p.set_defaults(run=run_explain)


def _options(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    batch = {"batch_size": args.batch_size}
    return {"occlusion": {"size": args.size, "stride": args.stride, **batch},
            "integrated_gradients": {"steps": args.steps, **batch},
            "smooth_grad": {"samples": args.samples, **batch}, "score_cam": batch}


def _clean(options: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in options.items() if v is not None}


def run_explain(args: argparse.Namespace) -> None:
    model = model_from(args)
    pictures = load_images(args.images)
    target = parse_target(args.target, model)
    options = {name: _clean(values) for name, values in _options(args).items()}
    for picture in pictures:
        name = slug(picture.name)
        if args.method == "all":
            figure = compare(model, [picture.pixels], target=target, layer=args.layer, names=[picture.name],
                             options=options)
            written(figure.save(args.out / f"explain_{name}_all.png"))
            continue
        result = explain(model, picture.pixels, args.method, target, layer=args.layer,
                         **options.get(args.method, {}))
        stem = f"explain_{name}_{args.method}"
        written(result.map_picture().save(args.out / f"{stem}_map.png"))
        written(result.overlay().save(args.out / f"{stem}_overlay.png"))
        if result.occlusion is not None:
            written(result.occlusion_picture().save(args.out / f"{stem}_maps.png"))
        print(f"  {picture.name}: {result.title} for {result.labels[0]}")
