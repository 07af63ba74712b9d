"""concepts: the channels that carried the relevance for a picture and class (concept relevance propagation)."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.cli.common import add_model_options, model_from, slug, written
from convscope.images import load_images


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("concepts", help="the channels of a layer that carried the relevance, each with its "
                                             "conditional heat map (CRP)",
                            description="Concept relevance propagation (Achtibat et al. 2023): the channels of "
                                        "--layer with the most LRP relevance for the picture and --target, each "
                                        "with its heat map conditioned on that channel; with --scan, each "
                                        "channel's top scanned patches by relevance beside those by activation.")
    p.add_argument("image", help="an image file or sample:NAME (e.g. sample:chelsea)")
    p.add_argument("--layer", required=True, help="dotted layer name (see `convscope layers`), e.g. blocks.5")
    p.add_argument("--target", default="top", help="class index or name, or 'top' (default: %(default)s)")
    p.add_argument("--composite", default="epsilon-plus-flat",
                   help="LRP composite: epsilon-plus-flat (default), epsilon-plus, epsilon-gamma-box, "
                        "epsilon-alpha2-beta1 or epsilon-alpha2-beta1-flat")
    p.add_argument("--top", type=int, default=6, help="how many channels (default: %(default)s)")
    p.add_argument("--scan", type=Path, help="a scan folder (`convscope scan` with this model and --layer): adds "
                                             "top patches by relevance and by activation per channel")
    p.add_argument("-k", type=int, default=5, help="patches per channel with --scan (default: %(default)s)")
    p.add_argument("--limit", type=int, help="with --scan, search the first N scanned pictures for relevance "
                                             "(default: all)")
    p.add_argument("--batch-size", type=int, help="pictures per LRP pass")
    add_model_options(p)
    p.set_defaults(run=run_concepts)


def run_concepts(args: argparse.Namespace) -> None:
    from convscope.attribution.concept_figure import concepts_figure
    from convscope.attribution.concepts import concept_relevance
    from convscope.attribution.explain import describe_targets
    from convscope.attribution.relevance_maximisation import relevance_patches
    from convscope.scan.result import ScanResult
    from convscope.targets import as_target, parse_target

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    result = ScanResult.load(args.scan) if args.scan is not None else None
    if result is not None:
        result.check_layer(args.layer)
    model = model_from(args)
    (picture,) = load_images([args.image])
    fitted = model.preprocess.fit([picture.pixels]).to(model.device)
    inputs = model.preprocess.normalize(fitted)
    target = as_target(parse_target(args.target, model), model)
    found = concept_relevance(model, inputs, target, args.layer, top=args.top, composite=args.composite,
                              batch_size=args.batch_size)
    label = describe_targets(model, target, inputs)[0]
    by_relevance = by_activation = None
    if result is not None:
        by_relevance = relevance_patches(model, result, found.layer, found.channels, target, composite=args.composite,
                                         k=args.k, limit=args.limit, batch_size=args.batch_size)
        by_activation = result.top_patches(found.layer, found.channels, min(args.k, result.top(found.layer)
                                                                             .values.shape[1]))
    figure = concepts_figure(found, fitted[0], label, by_relevance=by_relevance, by_activation=by_activation)
    print(f"{picture.name}: {label}; relevance at {found.layer} {found.total:.4g} ({found.composite})")
    for channel, value, share in zip(found.channels, found.relevance.tolist(), found.share.tolist(), strict=True):
        print(f"  channel {channel}: {value:.4g} ({share:.1%} of the layer's relevance)")
    written(figure.save(args.out / f"concepts_{slug(picture.name)}_{slug(found.layer)}.png"))
