"""atlas: every channel of chosen layers with its pictures, dataset examples, statistics and links, as files a
static site shows."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.cli.common import add_model_options, written
from convscope.models import DEFAULT_MODEL, load_model


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("atlas", help="an atlas of every channel of chosen layers (feature visualisations, "
                                          "top and bottom patches, statistics, circuit links) as a static site")
    p.add_argument("--layers", nargs="+", required=True, help="dotted layer names (see `convscope layers`)")
    p.add_argument("--scan", type=Path, help="a `convscope scan` folder of this model holding the layers: top and "
                                             "bottom patches, projections, statistics and top classes are read "
                                             "from it (without it, the atlas has the pictures and links only)")
    p.add_argument("--channels", type=int, nargs="+", help="only these channel indices of each layer (default: all)")
    p.add_argument("--size", type=int, help="side of the feature visualisations (default: 128, or the model's own "
                                            "input side when it is below 64 px, e.g. 28 for the Fashion-MNIST CNN)")
    p.add_argument("--steps", type=int, default=256, help="optimisation steps (default: %(default)s)")
    p.add_argument("--facets", type=int, default=4,
                   help="diverse facets per channel, 0 for none (default: %(default)s)")
    p.add_argument("--no-negative", dest="negative", action="store_false",
                   help="no negative visualisation (what inhibits a channel most); with --facets 0 each channel gets "
                        "its feature visualisation alone, a sixth of the default work")
    p.add_argument("--batch-size", type=int, help="channels optimised together (default: about 24 pictures on a "
                                                  "CPU, 64 channels on a GPU, fewer when they do not fit in half the "
                                                  "free memory); the pictures do not depend on it")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="the model's arithmetic while the pictures are optimised (default: %(default)s); bfloat16 is "
                        "faster where it is native (CPUs with AVX-512-BF16 or AMX, GPUs), slower elsewhere, and its "
                        "pictures differ from float32's in their details")
    p.add_argument("-k", type=int, default=9, help="top and bottom patches per channel (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another atlas in --out, or write into a folder that holds other files (only the "
                        "atlas's own files are replaced)")
    add_model_options(p, out="atlas", model_default=f"the scan's model with --scan, else {DEFAULT_MODEL}")
    p.set_defaults(model=None, run=run_atlas)


def run_atlas(args: argparse.Namespace) -> None:
    from convscope.atlas.build import make_atlas
    from convscope.atlas.visualise import recipe_for
    from convscope.scan import ScanResult
    from convscope.scan.distributed import launched_by_torchrun, local_device

    result = ScanResult.load(args.scan) if args.scan is not None else None
    source = (result.config.get("model_source") or {}) if result is not None else {}
    name = args.model or source.get("name") or DEFAULT_MODEL
    weights = args.weights if args.weights is not None or args.model else source.get("weights")
    device = args.device or (local_device() if launched_by_torchrun() else None)
    model = load_model(name, weights=weights, device=device, classes=args.classes, output=args.output)
    recipe = recipe_for(model.preprocess.channels, min(model.preprocess.input_size), size=args.size,
                        steps=args.steps, facets=args.facets, negative=args.negative, seed=args.seed,
                        precision=args.precision)
    out = make_atlas(model, args.layers, args.out, scan=result, channels=args.channels, recipe=recipe, k=args.k,
                     batch_size=args.batch_size, overwrite=args.overwrite, weights=weights)
    if launched_by_torchrun():
        import torch.distributed as dist

        if dist.get_rank() != 0:
            return
    written(out / "index.html")
