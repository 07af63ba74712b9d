"""train, scan, top-patches, neighbors, embed, dead-filters."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.cli.architecture import add_architecture_options, architecture_from
from convscope.cli.common import add_model_options, slug, written
from convscope.data.opening import DATA_HELP, open_dataset
from convscope.models import DEFAULT_MODEL, load_model
from convscope.models.fashion import FASHION_MODEL

SCAN_HELP = "a scan folder written by `convscope scan`"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train the Fashion-MNIST CNN, one checkpoint per epoch")
    p.add_argument("--data", help="folder with the Fashion-MNIST IDX files (default: Debian's "
                                  "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=5, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, decayed to 0 (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="Adam weight decay (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--shuffle-labels", action="store_true",
                   help="train on randomly permuted labels (the data randomisation test of the sanity checks)")
    p.add_argument("--train-pictures", type=int, help="use only the first N training pictures (default: all)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random horizontal flips")
    add_architecture_options(p)
    p.add_argument("--test-pictures", type=int, help="measure test accuracy on the first N test pictures "
                                                     "(default: all 10 000)")
    p.add_argument("--adversarial", action="store_true", help="train on PGD examples (Madry et al. 2018)")
    p.add_argument("--epsilon", type=float, default=0.1, help="L∞ radius of the PGD examples, pixels in [0, 1] "
                                                              "(default: %(default)s)")
    p.add_argument("--attack-steps", type=int, default=7, help="PGD steps per batch (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--out", type=Path, default=Path("runs/fashion_cnn"),
                   help="folder for epoch_NN.pt and history.csv (default: %(default)s)")
    p.set_defaults(run=run_train)

    p = commands.add_parser("scan", help="one pass over a picture set: features, top activations, statistics")
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--layers", nargs="+", required=True, help="dotted layer names (see `convscope layers`)")
    p.add_argument("-k", type=int, default=9, help="top pictures kept per channel (default: %(default)s)")
    p.add_argument("--pooling", choices=("mean", "max", "flatten"), default="mean",
                   help="feature vector per picture: mean or max over positions, or all values (default: mean)")
    p.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--workers", type=int, help="data-loading processes (default: 0 for in-memory sets, else ≤4)")
    p.add_argument("--limit", type=int, help="scan only the first N pictures")
    p.add_argument("--checkpoint-every", type=float, default=60.0,
                   help="seconds between saves of the progress (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="discard a different, finished or damaged scan in --out (only once the new scan can run)")
    p.add_argument("--wait", action="store_true",
                   help="when another scan is writing --out, wait for it to finish instead of stopping")
    add_model_options(p, out="scans/latest", model_default=f"{FASHION_MODEL} for fashion-mnist, else {DEFAULT_MODEL}")
    p.set_defaults(model=None, run=run_scan)

    p = commands.add_parser("top-patches", help="the pictures that excite each channel most, cut to the "
                                                "receptive field")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("--layer", help="a scanned layer (default: the last)")
    p.add_argument("--channels", nargs="+", help="channels: 3 7 12, 0-15 or all (default: 0-15)")
    p.add_argument("-k", type=int, help="pictures per channel (default: all the scan kept)")
    p.add_argument("--context", action="store_true", help="also show whole pictures with the box drawn")
    p.add_argument("--projections", nargs="?", const="auto", choices=("auto", "deconvnet", "guided_backprop"),
                   help="also Zeiler & Fergus's figure 2: each top activation projected to pixels beside its "
                        "patch (auto: the deconvnet where the model has max-pooling, else guided backprop, since "
                        "without max-pooling the deconvnet map is the same for every picture)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N for the projections (default: CUDA when "
                                                  "available)")
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_top_patches)

    p = commands.add_parser("neighbors", help="nearest pictures in feature space next to pixel space")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("images", nargs="+", help="#N (the scan's picture N), image files, folders or sample:NAME")
    p.add_argument("--layer", help="a scanned layer (default: the last)")
    p.add_argument("-k", type=int, default=8, help="(default: %(default)s)")
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_neighbors)

    p = commands.add_parser("embed", help="2-d map of a layer's features: PCA, t-SNE or UMAP, and a t-SNE grid")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("--method", choices=("tsne", "pca", "umap"), default="tsne")
    p.add_argument("--layer", help="a scanned layer (default: the last)")
    p.add_argument("--max-points", type=int, default=5000,
                   help="embed a seeded sample of at most this many pictures; 0 for all (default: %(default)s)")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default: %(default)s)")
    p.add_argument("--grid", type=int, default=20, help="side of the picture grid; 0 for none (default: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_embed)

    p = commands.add_parser("dead-filters", help="channels that stay at zero for (almost) every picture")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("--layer", help="a scanned layer (default: all scanned layers)")
    p.add_argument("--max-active", type=float, default=0.01,
                   help="dead when positive in at most this share of pictures (default: %(default)s)")
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_dead_filters)


def run_train(args: argparse.Namespace) -> None:
    from convscope.models.fashion_training import TrainingSettings, train_fashion_cnn

    settings = TrainingSettings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                weight_decay=args.weight_decay, seed=args.seed, shuffle_labels=args.shuffle_labels,
                                train_pictures=args.train_pictures, augment=args.augment,
                                architecture=architecture_from(args), test_pictures=args.test_pictures,
                                adversarial_epsilon=args.epsilon if args.adversarial else 0.0,
                                adversarial_steps=args.attack_steps)
    run = train_fashion_cnn(args.out, settings, root=args.data, device=args.device)
    written(args.out / "history.csv")
    print(f"final training accuracy {run.history[-1].train_accuracy:.2%}, test accuracy {run.test_accuracy:.2%}; "
          f"use it with --model {FASHION_MODEL} "
          f"--weights {args.out / f'epoch_{args.epochs:02d}.pt'}")


def run_scan(args: argparse.Namespace) -> None:
    from convscope.scan import Scan
    from convscope.scan.distributed import launched_by_torchrun, local_device

    pictures = open_dataset(args.data, limit=args.limit)
    name = args.model or (FASHION_MODEL if pictures.spec().get("kind") == "fashion-mnist" else DEFAULT_MODEL)
    device = args.device or (local_device() if launched_by_torchrun() else None)
    model = load_model(name, weights=args.weights, device=device, classes=args.classes, output=args.output)
    weights = str(args.weights.resolve()) if args.weights is not None else None
    result = Scan(model, args.layers, k=args.k, pooling=args.pooling).run(
        pictures, args.out, batch_size=args.batch_size, workers=args.workers, overwrite=args.overwrite,
        wait=args.wait, checkpoint_every=args.checkpoint_every, model_source={"name": name, "weights": weights})
    if launched_by_torchrun():
        import torch.distributed as dist

        if dist.get_rank() != 0:
            return
    print(f"{model.name} on {pictures.describe()}")
    for layer in result.layers:
        dead = result.dead_filters(layer)
        shape = "×".join(str(s) for s in result.shape(layer))
        print(f"  {layer}: {shape}, features {tuple(result.features(layer).shape)}, "
              f"{len(dead.channels)} dead channels")
    written(args.out)


def run_top_patches(args: argparse.Namespace) -> None:
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    layer = result.check_layer(args.layer)
    channels = parse_channels(args.channels, result.top(layer).values.shape[0])
    out = args.out or args.scan
    model = result.model(args.device) if args.projections else None  # fails before anything is written
    for start in range(0, len(channels), 16):
        page = channels[start:start + 16]
        view = result.top_patches(layer, page, args.k)
        name = f"top_patches_{slug(layer)}_{page[0]}-{page[-1]}"
        written(view.picture().save(out / f"{name}.png"))
        if args.context:
            written(view.picture(context=True).save(out / f"{name}_context.png"))
    if args.projections:
        from convscope.scan.projections import top_projections

        for start in range(0, len(channels), 8):
            page = channels[start:start + 8]
            figure = top_projections(result, layer, page, args.k, method=args.projections, model=model)
            if start == 0:
                print(figure.note[0].upper() + figure.note[1:] + ".")
            written(figure.picture().save(out / f"top_projections_{slug(layer)}_{page[0]}-{page[-1]}.png"))


def parse_channels(texts: list[str] | None, total: int) -> list[int]:
    """``['3', '7']``, ``['0-15']``, ``['2,5']`` or ``['all']`` → channel numbers (default: the first 16)."""
    if not texts:
        return list(range(min(16, total)))
    channels: list[int] = []
    for text in ",".join(texts).split(","):
        text = text.strip()
        if not text:
            continue
        if text == "all":
            channels.extend(range(total))
            continue
        first, dash, last = text.partition("-")
        try:
            channels.extend(range(int(first), int(last) + 1) if dash else [int(first)])
        except ValueError as error:
            raise ValueError(f"cannot read channels {text!r}: use numbers, ranges such as 0-15, or all") from error
    return list(dict.fromkeys(channels))


def run_neighbors(args: argparse.Namespace) -> None:
    from convscope.images import load_images
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    queries: list = []
    outside = []
    for text in args.images:
        if text.startswith("#") or text.startswith("index:"):
            number = text.removeprefix("#").removeprefix("index:")
            if not number.isdigit():
                raise ValueError(f"{text!r} is not a picture number: write #N with N in 0 … {result.count - 1}")
            queries.append(int(number))
        else:
            outside.extend(p.pixels for p in load_images([text]))
    queries.extend(outside)
    model = result.model(args.device) if outside else None
    view = result.neighbors(queries, args.layer, k=args.k, metric=args.metric, model=model)
    feature_share, pixel_share = view.agreement()
    if feature_share == feature_share:
        print(f"neighbours with the query's class: {feature_share:.0%} in feature space, "
              f"{pixel_share:.0%} in pixel space")
    out = args.out or args.scan
    written(view.picture().save(out / f"neighbors_{slug(view.layer)}.png"))


def run_embed(args: argparse.Namespace) -> None:
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    options = {"perplexity": args.perplexity} if args.method == "tsne" else {}
    embedding = result.embed(args.layer, method=args.method, max_points=args.max_points or None, seed=args.seed,
                             **options)
    out = args.out or args.scan
    name = f"{args.method}_{slug(embedding.layer)}"
    if embedding.note:
        print(embedding.note)
    scatter = embedding.scatter()  # every picture is made before the first file is written
    grid = embedding.grid_picture(args.grid, seed=args.seed) if args.grid else None
    written(embedding.to_csv(out / f"{name}.csv"))
    written(scatter.save(out / f"{name}.png"))
    if grid is not None:
        written(grid.save(out / f"{name}_grid.png"))


def run_dead_filters(args: argparse.Namespace) -> None:
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    layers = [result.check_layer(args.layer)] if args.layer else result.layers
    out = args.out or args.scan
    for layer in layers:
        view = result.dead_filters(layer, max_active=args.max_active)
        print("\n".join(view.lines()))
        written(view.picture().save(out / f"dead_filters_{slug(layer)}.png"))
