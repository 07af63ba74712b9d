"""The numbers every command takes, checked while the command line is read (before any model loads).

The checks are the library's own (:mod:`convscope.validation`), attached to each option by its
name: a count is at least 1, a picture side at least 8 pixels, "0 for none/all" options at least 0,
rates and weights finite and positive. ``convscope predict -k 0`` then fails at once, in one line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from functools import partial

from convscope.validation import argument, finite_number, picture_side, positive_number, whole_number

COUNTS = ("k", "max_filters", "max_channels", "steps", "samples", "batch_size", "max_train", "max_test", "limit",
          "epochs", "train_pictures", "test_pictures", "octaves", "facets", "source_size", "window", "width",
          "stride", "attack_steps", "kernel1", "stride1", "seeds", "per_class", "draws", "pool", "repeats")
ZERO_OR_MORE = ("max_points", "grid", "channel", "channels", "seed", "fc")  # train --fc 0: no fc7
POSITIVE = ("lr", "perplexity", "beta", "magnify")
NOT_NEGATIVE = ("weight_decay", "checkpoint_every", "tv", "style_weight", "content_weight")
SHARES = ("max_active", "epsilon")  # in [0, 1]
MOST = 2**31 - 1  # no count of pictures, steps, channels or pixels beyond this can be worked through
PORTS = 65535


def bounded(value: object, name: str, *, minimum: int) -> int:
    """A whole number from ``minimum`` to :data:`MOST`."""
    number = whole_number(value, name, minimum=minimum)
    if number > MOST:
        raise ValueError(f"{name} must be at most {MOST} (2³¹ − 1), got {number}")
    return number


def port(value: object, name: str) -> int:
    """A TCP port: 0 (pick a free one) … 65535."""
    number = whole_number(value, name, minimum=0)
    if number > PORTS:
        raise ValueError(f"{name} must lie in 0 … {PORTS} (0 picks a free port), got {number}")
    return number


def processes(value: object, name: str) -> int:
    """A number of worker processes: 0 … 4 × this machine's cores (at least 8); more only wait on each other."""
    number = whole_number(value, name, minimum=0)
    cores = os.cpu_count() or 1
    most = max(8, 4 * cores)
    if number > most:
        raise ValueError(f"{name} must be at most {most} (4 × the {cores} cores of this machine), got {number}")
    return number


def fitting_picture_side(value: object, name: str) -> int:
    """A picture side of at least 8 pixels whose picture fits in this machine's memory."""
    from convscope.synthesis.sizes import check_picture_memory

    side = picture_side(value, name)
    check_picture_memory(1, side, side, hint=f"give a smaller {name}")
    return side


def centre_share(value: object, name: str) -> float:
    """The share of each side a centre box covers: more than 0, at most 1."""
    number = finite_number(value, name, minimum=0.0, maximum=1.0)
    if number == 0:
        raise ValueError(f"{name} must lie in (0, 1] (a share of each side), got 0")
    return number


def at_most(value: object, name: str, *, most: float, why: str, zero: bool = False) -> float:
    """A finite number above 0 (from 0 with ``zero``) and at most ``most`` (``why`` says why not more)."""
    number = finite_number(value, name, minimum=0.0) if zero else positive_number(value, name)
    if number > most:
        raise ValueError(f"{name} must be at most {most:g} ({why}), got {number:g}")
    return number


# (command, option) whose meaning differs from the option of that name elsewhere
SPECIAL: dict[tuple[str, str], Callable[..., object]] = {
    ("explain", "size"): partial(bounded, minimum=1),
    ("factors", "concepts"): partial(bounded, minimum=1),
    **{(command, "alpha"): partial(at_most, most=10.0, why="Finer-CAM's paper uses 0 to 1; more only subtracts more",
                                   zero=True) for command in ("explain", "explain-set")},
    **{(command, "comparison"): partial(bounded, minimum=1) for command in ("explain", "explain-set")},
    ("explore", "port"): port,
    ("atlas", "facets"): partial(bounded, minimum=0),  # 0: a channel's visualisation without facets
    ("explain-set", "centre"): centre_share,
    ("train", "lr"): partial(at_most, most=1.0, why="an Adam learning rate above 1 diverges"),
    ("train", "weight_decay"): partial(at_most, most=1.0, why="a decay above 1 swamps the loss's gradient", zero=True),
    ("invert", "beta"): partial(at_most, most=10.0, why="TV^β of a larger power overflows; the paper uses 1 to 3"),
}


def check_for(command: str, dest: str) -> Callable[..., object] | None:
    """The check for option ``dest`` of ``command``, or ``None`` when the option is not a checked number."""
    if (command, dest) in SPECIAL:
        return SPECIAL[command, dest]
    if dest in COUNTS:
        return partial(bounded, minimum=1)
    if dest in ZERO_OR_MORE:
        return partial(bounded, minimum=0)
    if dest == "workers":
        return processes
    if dest == "size":
        return fitting_picture_side
    if dest in POSITIVE:
        return positive_number
    if dest in NOT_NEGATIVE:
        return partial(finite_number, minimum=0.0)
    if dest in SHARES:
        return partial(finite_number, minimum=0.0, maximum=1.0)
    return None


def apply(parser: argparse.ArgumentParser) -> None:
    """Give every numeric option of every command its check (as the argparse ``type``)."""
    from convscope.cli.conventions import commands

    for command, sub in commands(parser):
        for action in sub._actions:
            if action.type not in (int, float):
                continue
            check = check_for(command, action.dest)
            if check is not None:
                name = max(action.option_strings, key=len) if action.option_strings else action.dest
                action.type = argument(check, name)
