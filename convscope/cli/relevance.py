"""concepts (the channels that carried the relevance: concept relevance propagation) and tcav (human concepts)."""

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

    p = commands.add_parser("factors", help="deep feature factorisation: a layer's activations over some pictures "
                                            "split into a few concepts, each with its map and the classes it supports",
                            description="Deep feature factorisation (Collins et al. 2018): non-negative matrix "
                                        "factorisation of --layer's activations over all the pictures into "
                                        "--concepts shared concepts; the figure shows where each one is on every "
                                        "picture and the classes its embedding supports through the classifier.")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME (e.g. sample:chelsea)")
    p.add_argument("--layer", help="dotted layer name (default: the last feature map, bn2 on EfficientNet-Lite)")
    p.add_argument("--concepts", type=int, default=4, help="how many concepts (default: %(default)s)")
    p.add_argument("--steps", type=int, default=500, help="most NMF steps (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the NMF initialisation (default: %(default)s)")
    add_model_options(p)
    p.set_defaults(run=run_factors)

    p = commands.add_parser("tcav", help="TCAV: does a human concept (stripes, a colour) matter to a class, with a "
                                         "significance test",
                            description="Testing with concept activation vectors (Kim et al. 2018): for each concept "
                                        "and class, the share of --images whose class logit grows along the concept's "
                                        "direction at --layer, over --runs random sets, and a two-sided t-test "
                                        "against random directions.")
    p.add_argument("--concepts", nargs="+", required=True,
                   help="folders of pictures showing each concept, or built-in generated textures: "
                        "builtin:stripes, builtin:dots, builtin:chequered, builtin:zigzag, builtin:red, builtin:green, "
                        "builtin:blue, builtin:yellow")
    p.add_argument("--random", default="builtin",
                   help="a folder of random pictures (sub-folders: one random set each; flat: sets are drawn from "
                        "it), or builtin: crops of the bundled photos (default: %(default)s)")
    p.add_argument("--layer", required=True, help="dotted layer name, e.g. blocks.4")
    p.add_argument("--targets", nargs="+", required=True, help="class names or indices, e.g. zebra tabby")
    p.add_argument("--images", nargs="+", help="pictures to take directional derivatives at: files, folders or "
                                               "sample:NAME (default: every bundled sample photo)")
    p.add_argument("--runs", type=int, default=10, help="random sets to test against, at least 10 "
                                                         "(default: %(default)s)")
    p.add_argument("--per-set", type=int, default=30, help="pictures per built-in concept and per drawn random set "
                                                           "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sets and classifiers (default: 0)")
    p.add_argument("--batch-size", type=int, help="pictures per forward pass")
    add_model_options(p)
    p.set_defaults(run=run_tcav)


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


def run_factors(args: argparse.Namespace) -> None:
    from convscope.attribution.factor_figure import concept_labels, factorisation_figure
    from convscope.attribution.factorisation import factorise
    from convscope.cli.output_names import identity, output_name
    from convscope.images import expand_sources

    model = model_from(args)
    sources = expand_sources(args.images)
    pictures = load_images(sources)
    fitted = model.preprocess.fit([picture.pixels for picture in pictures]).to(model.device)
    found = factorise(model, model.preprocess.normalize(fitted), args.layer, args.concepts, steps=args.steps,
                      seed=args.seed)
    names = [picture.name for picture in pictures]
    figure = factorisation_figure(found, fitted, names, model.classes())
    print(f"{len(pictures)} pictures, {args.concepts} concepts at {found.layer}: ‖V − WH‖/‖V‖ = {found.error:.3f} "
          f"after {found.steps} steps")
    for label in concept_labels(found, model.classes(), top=3):
        print(f"  {label}")
    parts = ("factors", found.layer, *names[:3], f"and{len(names) - 3}" if len(names) > 3 else None)
    written(figure.save(args.out / output_name(*parts, identity=identity(args, pictures=["images"]))))


MAX_RUNS = 500  # random sets: each is a classifier fit and a set of pictures


def run_tcav(args: argparse.Namespace) -> None:
    from convscope.analysis.tcav import MIN_RUNS, check_sets, tcav
    from convscope.images import load_images, sample_names
    from convscope.targets import parse_target

    if not MIN_RUNS <= args.runs <= MAX_RUNS:
        raise ValueError(f"--runs must be between {MIN_RUNS} (for the t-test) and {MAX_RUNS}, got {args.runs}")
    concepts = {name: pictures for name, pictures in (_concept(text, args) for text in args.concepts)}
    if len(concepts) != len(args.concepts):
        raise ValueError("two --concepts have the same name; give folders with different names")
    randoms = _randoms(args)
    check_sets(concepts, randoms)
    model = model_from(args)
    classes = []
    for text in args.targets:
        target = parse_target(text, model)
        index = getattr(target, "index", None)
        if index is None:
            raise ValueError(f"--targets takes class names or indices, got {text!r}")
        classes.append(int(index))
    pictures = [p.pixels for p in load_images(args.images or [f"sample:{n}" for n in sample_names()])]
    result = tcav(model, concepts, randoms, pictures, args.layer, classes, seed=args.seed,
                  batch_size=args.batch_size)
    for line in result.lines():
        print(line)
    builtin = [t.split(":", 1)[1] for t in args.concepts if t.startswith("builtin:")]
    note = ("built-in concepts are generated textures and colour patches, random sets crops of the bundled photos"
            if builtin or args.random == "builtin" else "")
    stem = f"tcav_{slug(result.layer)}"
    written(result.figure(note).save(args.out / f"{stem}.png"))
    path = args.out / f"{stem}.csv"
    rows = ["concept,class,mean,std,random_mean,p_value,significant,cav_accuracy"]
    mark = result.significant()
    for c, concept in enumerate(result.concepts):
        for k, name in enumerate(result.classes):
            scores = result.scores[c, k]
            rows.append(f"{concept},{name},{float(scores.mean()):.4f},{float(scores.std()):.4f},"
                        f"{float(result.random_scores[k].mean()):.4f},{float(result.p_values[c, k]):.4g},"
                        f"{bool(mark[c, k])},{float(result.accuracy[c].mean()):.4f}")
    path.write_text("\n".join(rows) + "\n")
    written(path)


def _concept(text: str, args: argparse.Namespace) -> tuple[str, list]:
    """A concept's name and pictures: ``builtin:NAME`` (generated) or a folder."""
    from convscope.data.concept_textures import concept_pictures

    if text.startswith("builtin:"):
        name = text.split(":", 1)[1]
        return name, concept_pictures(name, args.per_set, seed=args.seed)
    folder = Path(text)
    if not folder.is_dir():
        raise ValueError(f"concept {text!r} is not a folder of pictures (or builtin:NAME, e.g. builtin:stripes)")
    return folder.name, [p.pixels for p in load_images([folder])]


def _randoms(args: argparse.Namespace) -> list[list]:
    """``--runs`` + 1 random sets: sub-folders of --random, sets drawn from its pictures, or built-in crops."""
    import torch

    from convscope.data.concept_textures import random_sets

    count = args.runs + 1
    if args.random == "builtin":
        return random_sets(count, args.per_set, seed=args.seed)
    folder = Path(args.random)
    if not folder.is_dir():
        raise ValueError(f"--random {args.random!r} is not a folder of pictures (or builtin)")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
    if subfolders:
        if len(subfolders) < count:
            raise ValueError(f"{folder} holds {len(subfolders)} random sets; --runs {args.runs} needs {count}")
        return [[p.pixels for p in load_images([sub])] for sub in subfolders[:count]]
    pool = [p.pixels for p in load_images([folder])]
    if len(pool) < 2 * args.per_set:
        raise ValueError(f"{folder} holds {len(pool)} pictures; drawing random sets of {args.per_set} needs at least "
                         f"{2 * args.per_set} (or lower --per-set)")
    generator = torch.Generator().manual_seed(args.seed)
    return [[pool[int(i)] for i in torch.randperm(len(pool), generator=generator)[:args.per_set]]
            for _ in range(count)]
