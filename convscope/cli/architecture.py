"""The Fashion-MNIST CNN's architecture options (``train``; ``ablate`` builds its variants from the same spec)."""

from __future__ import annotations

import argparse

from convscope.models.fashion import DEFAULT_ARCHITECTURE, FashionArchitecture


def add_architecture_options(parser: argparse.ArgumentParser) -> None:
    a = DEFAULT_ARCHITECTURE
    parser.add_argument("--channels", type=int, nargs="+", default=list(a.channels),
                        help="width of each convolution, one number per layer (default: %(default)s)")
    parser.add_argument("--kernel1", type=int, default=a.kernel1, help="first layer's kernel side (default: "
                                                                       "%(default)s; AlexNet 11, Zeiler & Fergus 7)")
    parser.add_argument("--stride1", type=int, default=a.stride1, help="first layer's stride (default: %(default)s)")
    parser.add_argument("--fc", type=int, default=a.fc, help="width of the hidden fully connected layer fc7, "
                                                             "0 for none (default: %(default)s)")


def architecture_from(args: argparse.Namespace) -> FashionArchitecture:
    return FashionArchitecture(tuple(args.channels), args.kernel1, args.stride1, args.fc)
