"""explore: the web app (a local server; prints the URL to open)."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.images import expand_sources, load_image
from convscope.validation import output_folder


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("explore", help="a web app to look inside the model interactively (local server)")
    p.add_argument("sources", nargs="*", type=Path,
                   help="folders and picture files to explore (only these are readable; the bundled photos always)")
    p.add_argument("--scan", type=Path, help="a `convscope scan` output folder: data set view and top patches")
    p.add_argument("--checks", type=Path, help="a `convscope check` output folder: badges next to the methods")
    p.add_argument("--atlas", type=Path, help="a `convscope atlas` output folder: served read-only under /atlas/, "
                                              "linked from the layer view")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8765, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--token", help="the token browsers and scripts must present (default: a random one, printed "
                                   "in the URL)")
    p.add_argument("--no-token", action="store_true",
                   help="no token (loopback addresses only; any local program or user can then use it)")
    p.add_argument("--cache", type=Path, help="where feature visualisations are kept "
                                              "(default: ~/.cache/convscope/explore)")
    p.add_argument("--methods", nargs="+", help="attribution methods the image view shows (default: all)")
    p.add_argument("--model", default=None, help="model name (default: efficientnet_lite0, embedded)")
    p.add_argument("--weights", type=Path, help="local state-dict file for the model (no download)")
    p.add_argument("--classes", type=Path, help="text file of the model's class names, one per line")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.set_defaults(run=run_explore)


def run_explore(args: argparse.Namespace) -> None:
    if args.atlas is not None:  # a folder that is not an atlas is refused before the model loads
        from convscope.atlas.site import read_atlas

        read_atlas(args.atlas)
    if args.cache is not None:  # refused before the server starts, not on the first visualisation
        output_folder(args.cache, "--cache")
    for source in args.sources:  # a folder holds pictures, a file is one (empty or damaged ones are refused)
        if source.is_dir():
            expand_sources([source])
        elif source.is_file():
            load_image(source)
    try:
        from convscope.explore.server import serve
    except ImportError as error:
        raise ValueError(f"the explorer needs its extra packages ({error.name} is missing): "
                         "pip install 'convscope[explore]'") from error
    serve(args.sources, model=args.model, weights=args.weights, device=args.device, scan=args.scan,
          checks=args.checks, host=args.host, port=args.port, token=args.token, cache=args.cache,
          methods=args.methods, no_token=args.no_token, classes=args.classes, atlas=args.atlas)
