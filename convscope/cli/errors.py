"""How the command line fails: arguments checked before any work, and every error as one plain line (exit 2)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import torch

from convscope.validation import output_folder, regular_file

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
EXIT_BAD_INPUT = 2
WRITE_NOTHING = ("predict", "layers")  # commands that take --out with the shared options but write no file
KEEPS_PROGRESS = ("scan", "train", "atlas")  # what they wrote before an error is progress to resume or keep


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``convscope predict: error: … (see --help)``), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def check_arguments(args: argparse.Namespace) -> None:
    """What can be checked before the work starts: the device and the folders the command will write."""
    device = getattr(args, "device", None)
    if device is not None:
        from convscope.devices import pick_device

        pick_device(device)
    out = _output(args)
    if out is not None:
        output_folder(out, "--out" if getattr(args, "out", None) is not None else "the scan folder")
    save = getattr(args, "save", None)
    if isinstance(save, Path):
        output_folder(save.parent, f"the folder of --save {str(save)!r}")
    check_input_paths(args)


INPUT_FILES = {"classes": ("class names file", "give a text file with one class name per line"),  # --weights: the
               "network": ("style network file", "give a file written by `convscope fast-style train`")}  # reader's
INPUT_FOLDERS = {"scan": "the scan folder", "checks": "--checks", "checkpoints": "--checkpoints"}


def check_input_paths(args: argparse.Namespace) -> None:
    """Files and folders the command reads, checked (never opened) before any model or data loads: a folder
    where a file belongs, a pipe or device, a missing path — each refused in one line."""
    for dest, (what, hint) in INPUT_FILES.items():
        for path in _paths(getattr(args, dest, None)):
            regular_file(path, what, hint)
    for dest, what in INPUT_FOLDERS.items():  # a missing one: the reader says what would make it
        for path in _paths(getattr(args, dest, None)):
            if path.exists() and not path.is_dir():
                raise ValueError(f"{what} {str(path)!r} is not a folder: give a folder")
    for text in _sources(args):
        path = Path(text)
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ValueError(f"{text!r} is not a regular file (a pipe, device or socket): give a picture file, a "
                             "folder or sample:NAME")


def _paths(value: object) -> list[Path]:
    values = value if isinstance(value, list) else [value] if value is not None else []
    return [Path(v) for v in values if isinstance(v, str | Path)]


def _sources(args: argparse.Namespace) -> list[str]:
    """The picture arguments of the command (files, folders, sample: and set names)."""
    dests = ("images", "image", "content", "style", "data", "sources")
    return [str(path) for dest in dests for path in _paths(getattr(args, dest, None))]


@contextmanager
def nothing_left_on_error(args: argparse.Namespace) -> Iterator[None]:
    """When the command fails with an error, remove the files it added to its output folder (and the folder,
    if it made it and it is empty). ``scan`` keeps its resumable progress; ``train`` its finished epochs."""
    out = _output(args)
    if out is None or args.command in KEEPS_PROGRESS or (out.exists() and not out.is_dir()):
        yield
        return
    existed = out.exists()
    before = set(os.listdir(out)) if existed else set()
    try:
        yield
    except (ValueError, TypeError, OSError, MemoryError, torch.OutOfMemoryError):
        if out.is_dir():
            for name in set(os.listdir(out)) - before:
                path = out / name
                if path.is_file() or path.is_symlink():
                    path.unlink(missing_ok=True)
            if not existed and not any(out.iterdir()):
                out.rmdir()
        raise


def _output(args: argparse.Namespace) -> Path | None:
    """The folder a command writes: --out, else the scan folder for the views of a scan."""
    if args.command in WRITE_NOTHING:
        return None
    out = getattr(args, "out", None)
    if out is None and isinstance(getattr(args, "scan", None), Path):
        out = args.scan
    return Path(out) if out is not None else None


def one_line(error: BaseException | str) -> str:
    """The error as one line without terminal escapes; an OSError as 'what: file'."""
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror + (f": {error.filename}" if error.filename else "")
    elif isinstance(error, MemoryError):
        text = "not enough memory: try a smaller --batch-size, fewer or smaller pictures"
    else:
        text = str(error) if not isinstance(error, KeyError) else f"missing entry {error}"
    lines = [line.strip() for line in ANSI.sub("", text).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@contextmanager
def user_code_errors() -> Iterator[None]:
    """An exception raised by the code of a model file (``--model net.py:make``: its forward) as a one-line
    ``ValueError`` that names the file and line, ``from`` the original; convscope's own errors pass unchanged."""
    try:
        yield
    except (ValueError, TypeError, OSError, MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as error:
        place = _user_code(error.__traceback__)
        if place is None:
            raise
        raise ValueError(f"the model's own code raised {type(error).__name__} at {place}: {one_line(error)} "
                         "(run the model on a batch of its input size to debug it)") from error


def _user_code(trace: TracebackType | None) -> str | None:
    """``file:line`` of the last frame in a model file, when no convscope frame comes after it (else None)."""
    from convscope.models.files import USER_MODULE

    place = None
    for frame, line in traceback.walk_tb(trace):
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith(USER_MODULE):
            place = f"{Path(frame.f_code.co_filename).name}:{line}"
        elif module == "convscope" or module.startswith("convscope."):
            place = None  # a hook of convscope's, called from the model's code, raised: convscope's own error
    return place


def report(command: str, error: BaseException) -> int:
    """Print ``convscope COMMAND: error: …`` on stderr and return the exit status for bad input."""
    print(f"convscope {command}: error: {one_line(error)}", file=sys.stderr)
    return EXIT_BAD_INPUT
