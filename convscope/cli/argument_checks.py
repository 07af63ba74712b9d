"""The numbers every command takes, checked while the command line is read (before any model loads).

The checks are the library's own (:mod:`convscope.validation`), attached to each option by its
name: a count is at least 1, a picture side at least 8 pixels, "0 for none/all" options at least 0,
rates and weights finite and positive. ``convscope predict -k 0`` then fails at once, in one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

from convscope.validation import argument, finite_number, picture_side, positive_number, whole_number

COUNTS = ("k", "max_filters", "max_channels", "steps", "samples", "batch_size", "max_train", "max_test", "limit",
          "epochs", "train_pictures", "test_pictures", "octaves", "facets", "source_size", "window", "width",
          "stride", "attack_steps", "kernel1", "stride1", "seeds", "per_class", "draws", "pool", "repeats")
ZERO_OR_MORE = ("workers", "max_points", "grid", "channel", "channels", "seed", "port", "fc")  # train --fc 0: no fc7
POSITIVE = ("lr", "perplexity", "beta", "magnify")
NOT_NEGATIVE = ("weight_decay", "checkpoint_every", "tv", "style_weight", "content_weight")
SHARES = ("max_active", "epsilon")  # in [0, 1]
# (command, option) whose meaning differs from the option of that name elsewhere
PORTS = 65535


def fitting_picture_side(value: object, name: str) -> int:
    """A picture side of at least 8 pixels whose picture fits in this machine's memory."""
    from convscope.synthesis.sizes import check_picture_memory

    side = picture_side(value, name)
    check_picture_memory(1, side, side, hint=f"give a smaller {name}")
    return side


def port(value: object, name: str) -> int:
    """A TCP port: 0 (pick a free one) … 65535."""
    number = whole_number(value, name, minimum=0)
    if number > PORTS:
        raise ValueError(f"{name} must lie in 0 … {PORTS} (0 picks a free port), got {number}")
    return number


SPECIAL: dict[tuple[str, str], Callable[..., object]] = {("explain", "size"): partial(whole_number, minimum=1),
                                                         ("explore", "port"): port}


def check_for(command: str, dest: str) -> Callable[..., object] | None:
    """The check for option ``dest`` of ``command``, or ``None`` when the option is not a checked number."""
    if (command, dest) in SPECIAL:
        return SPECIAL[command, dest]
    if dest in COUNTS:
        return partial(whole_number, minimum=1)
    if dest in ZERO_OR_MORE:
        return partial(whole_number, minimum=0)
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
