"""The same bad input for every command: each argument that names a file or folder, or takes a number, is fed
a missing path, a folder where a file belongs, a FIFO, /dev/null, /dev/full, an empty and a binary file, a huge,
a negative, a NaN and an infinite number. Every one must end in one plain line and exit status 2 — never a
traceback, a hang or exit 0.

The commands and their arguments are read from the parser, so a new command or option is in the battery the
day it is added; an argument whose kind the battery cannot tell fails :func:`test_every_argument_has_a_kind`
until it is named in :data:`KINDS` or :data:`NOT_PATHS`. The commands load the small Fashion-MNIST CNN, and
are expected to refuse before any real work (the per-case deadline stops a command that does not).
"""

from __future__ import annotations

import argparse
import os
import shutil

import pytest
import torch
from cli_runs import assert_refused, run
from PIL import Image

from convscope.cli import build_parser
from convscope.cli.conventions import commands, has_subcommands

SECONDS = 20  # a case that runs longer did not refuse its input
HUGE, NEGATIVE = "1000000000000000", "-1"
NUMBERS = {"huge": HUGE, "negative": NEGATIVE, "nan": "nan", "inf": "inf"}
# what each kind of path argument is fed (placeholders filled from the `bad` fixture)
BAD_PATHS = {
    "pictures": ("missing", "fifo", "dev_null", "empty_file", "binary_file", "empty_folder"),
    "file": ("missing", "folder", "fifo", "dev_null", "empty_file", "binary_file"),
    "folder": ("missing", "file", "fifo", "dev_null", "empty_folder"),
    "out_folder": ("file", "fifo", "dev_null", "dev_full"),
    "out_file": ("folder", "fifo", "dev_null", "dev_full"),
    "model": ("missing_model", "folder", "fifo", "dev_null", "empty_model", "binary_model"),
}
# the kind of each argument that names a path: by option name, or (command, name) where a command differs
KINDS: dict[str | tuple[str, str], str] = {
    "images": "pictures", "image": "pictures", "content": "pictures", "style": "pictures", "data": "pictures",
    "sources": "pictures", "weights": "file", "classes": "file", "network": "file", "compare": "file",
    "scan": "folder", "checks": "folder", "checkpoints": "folder", "out": "out_folder", "cache": "out_folder",
    "save": "out_file", "model": "model", ("train", "data"): "folder", ("ablate", "data"): "folder",
    "runs": "file", ("tcav", "concepts"): "folder", ("tcav", "random"): "folder", ("check", "pictures"): "pictures",
    ("explore", "atlas"): "folder",
}
# text arguments that are not paths (names of layers, classes, methods, devices …)
NOT_PATHS = {"layer", "layers", "target", "targets", "device", "host", "token", "methods", "only", "photos",
             "channels", "variants", "composite", "defence_layers", "around", "metrics"}
# (command, option, bad value) accepted on purpose, with the reason; these are not run
ACCEPTED: dict[tuple[str, str, str], str] = {
    **{(command, "out", value): f"{command} writes no file: --out is not used"
       for command in ("predict", "layers") for value in BAD_PATHS["out_folder"]},
    ("scan", "checkpoint_every", "huge"): "seconds between saves of the progress: huge means at the end only",
    ("fool", "magnify", "huge"): "how much the change is magnified in the figure: any factor can be shown",
    ("style", "style_weight", "huge"): "a relative weight: any finite value is a choice (all style)",
    ("style", "content_weight", "huge"): "a relative weight: any finite value is a choice (all content)",
    ("invert", "tv", "huge"): "a relative weight: any finite value is a choice (a flat picture)",
    ("classviz", "l2", "huge"): "λ, a relative weight: any finite value is a choice (a grey picture)",
    ("train", "defence_weight", "huge"): "a relative weight: any finite value is a choice (features matched only)",
}
# a valid value for each required argument, so that only the argument under test is bad
VALID = {"images": "{picture}", "image": "{picture}", "content": "{picture}", "style": "{picture}",
         "data": "{pictures}", "layer": "relu2", "layers": "relu2", "channels": "0", "channel": "0", "targets": "1",
         "scan": "{scan}", "checkpoints": "{checkpoints}", "network": "{network}", "runs": "fashion_linear",
         "concepts": "builtin:stripes"}


def leaf_commands() -> list[tuple[str, argparse.ArgumentParser]]:
    return [(name, sub) for name, sub in commands(build_parser()) if not has_subcommands(sub)]


def takes_a_value(action: argparse.Action) -> bool:
    return action.nargs != 0 and not isinstance(action, argparse._HelpAction | argparse._VersionAction)


def is_number(action: argparse.Action) -> bool:
    """Whether the argument reads a number (its type accepts 1, 0.5 or 16 and refuses 'x')."""
    if action.type is None or not callable(action.type):
        return False
    for example in ("1", "0.5", "16"):
        try:
            action.type(example)
            break
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            continue
    else:
        return False
    try:
        action.type("x")
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return True
    return False


def kind_of(command: str, action: argparse.Action) -> str | None:
    """'number', a path kind of :data:`KINDS`, 'text' (not a path), or None when the battery cannot tell."""
    if is_number(action):
        return "number"
    if (command, action.dest) in KINDS:
        return KINDS[command, action.dest]
    if action.dest in KINDS:
        return KINDS[action.dest]
    if action.choices is not None or action.dest in NOT_PATHS:
        return "text"
    return None


def arguments() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    return [(name, sub, action) for name, sub in leaf_commands() for action in sub._actions
            if takes_a_value(action)]


def cases() -> list[tuple[str, str, str, str]]:
    """(command, option dest, kind, bad value name) for every argument and every bad value of its kind."""
    found = []
    for command, _, action in arguments():
        kind = kind_of(command, action)
        values = NUMBERS if kind == "number" else BAD_PATHS.get(kind or "", ())
        for value in values:
            if (command, action.dest, value) not in ACCEPTED:
                found.append((command, action.dest, kind, value))
    return found


def battery() -> list:
    """:func:`cases` as test parameters: each argument's first case, in turn the next bad value of its kind for
    the next argument, runs by default (every argument and every bad value in under a minute); the rest are
    marked slow (``-m slow`` runs the whole cross product)."""
    params, turn, seen = [], 0, set()
    for command, dest, kind, value in cases():
        values = [v for v in (NUMBERS if kind == "number" else BAD_PATHS[kind]) if (command, dest, v) not in ACCEPTED]
        first = (command, dest) not in seen and values.index(value) == turn % len(values)
        if first:
            seen.add((command, dest))
            turn += 1
        marks = () if first else (pytest.mark.slow,)
        params.append(pytest.param(command, dest, kind, value, marks=marks, id=f"{command} {dest}={value}"))
    return params


def command_line(command: str, dest: str, bad: str) -> list[str]:
    """``command`` with valid required arguments, ``--model fashion_cnn`` where it has one, and ``bad`` for
    ``dest``."""
    parser = dict(leaf_commands())[command]
    argv = command.split()
    options: list[str] = []
    for action in parser._actions:
        if not takes_a_value(action):
            continue
        if action.dest == dest:
            value = [bad]
        elif action.dest == "model" and action.option_strings:
            value = ["fashion_cnn"]
        elif action.required and action.nargs not in ("*", "?"):
            if action.dest not in VALID:
                raise AssertionError(f"the battery has no valid value for {command}'s required {action.dest!r}: "
                                     "add one to VALID")
            value = [VALID[action.dest]]
        else:
            continue
        if action.option_strings:
            options += [max(action.option_strings, key=len), *value]
        else:
            argv += value
    return argv + options


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, str]:
    """Bad paths by name, and the valid things the required arguments point to."""
    root = tmp_path_factory.mktemp("battery")
    made = {"missing": str(root / "missing" / "nothing.png"), "missing_model": str(root / "missing.pt"),
            "dev_null": "/dev/null", "dev_full": "/dev/full"}
    for name in ("folder", "empty_folder"):
        (root / name).mkdir()
        made[name] = str(root / name)
    (root / "a_file.png").write_text("a file")
    made["file"] = str(root / "a_file.png")
    os.mkfifo(root / "pipe.png")
    made["fifo"] = str(root / "pipe.png")
    (root / "empty.png").write_bytes(b"")
    made["empty_file"] = str(root / "empty.png")
    (root / "empty.pt").write_bytes(b"")
    made["empty_model"] = str(root / "empty.pt")
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    for name in ("binary.png", "binary.pt"):
        (root / name).write_bytes(bytes(noise.tolist()))
    made["binary_file"], made["binary_model"] = str(root / "binary.png"), str(root / "binary.pt")
    pictures = root / "pictures"
    pictures.mkdir()
    for n in range(4):
        Image.new("L", (28, 28), 40 * n).save(pictures / f"{n}.png")
    made["pictures"], made["picture"] = str(pictures), str(pictures / "1.png")
    from convscope.cli import main

    made["scan"] = str(root / "scan")
    assert main(["scan", made["pictures"], "--model", "fashion_cnn", "--layers", "relu2", "--out", made["scan"],
                 "--batch-size", "2", "-q"]) == 0
    checkpoints = root / "checkpoints"
    checkpoints.mkdir()
    from convscope.models.fashion import SHIPPED_WEIGHTS

    (checkpoints / "epoch_01.pt").write_bytes(SHIPPED_WEIGHTS.read_bytes())
    made["checkpoints"] = str(checkpoints)
    from convscope.synthesis.fast_style import FastStyle, TransformNet

    made["network"] = str(FastStyle(TransformNet(2, 0), torch.zeros(3, 8, 8), torch.ones(2)).save(root / "net.pt"))
    return made


def test_every_argument_has_a_kind() -> None:
    unknown = [f"{command} {max(a.option_strings, key=len) if a.option_strings else a.dest}"
               for command, _, a in arguments() if kind_of(command, a) is None]
    assert not unknown, ("the battery cannot tell what these arguments take: name them in KINDS (a path) or "
                         f"NOT_PATHS (text): {unknown}")


def test_the_battery_covers_every_command() -> None:
    covered = {command for command, *_ in cases()}
    assert covered == {command for command, _ in leaf_commands()}
    assert len(cases()) > 500
    stale = [key for key in ACCEPTED if key[0] not in covered]
    assert not stale, f"ACCEPTED names commands that are gone: {stale}"


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    """An empty working folder for the battery: default output folders land there, were anything written."""
    folder, before = tmp_path_factory.mktemp("cwd"), os.getcwd()
    os.chdir(folder)
    yield folder
    os.chdir(before)


@pytest.mark.parametrize(("command", "dest", "kind", "value"), battery())
def test_bad_input_is_refused_in_one_line(command, dest, kind, value, bad, here, capsys) -> None:
    text = NUMBERS[value] if kind == "number" else bad[value]
    argv = [part.format(**bad) for part in command_line(command, dest, text)]
    try:
        status, err = run(argv, capsys, seconds=SECONDS)
    finally:
        written = os.listdir(here)
        for name in written:  # the next case starts in an empty folder again
            shutil.rmtree(here / name, ignore_errors=True)
    assert_refused(status, err)
    assert not written, f"{argv} wrote {written} before refusing"
