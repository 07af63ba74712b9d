"""Checking the values a user hands in (counts, sizes, output folders), once, where they come in.

Each check returns the value it accepts or raises a one-line ``ValueError``/``TypeError``
that names the value, says what was wrong and what would work. The library and the
command line use the same functions (the command line through :func:`argument`).
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def whole_number(value: object, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an int of at least ``minimum`` (bools and fractional numbers refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        floor = {0: "0 or more", 1: "at least 1"}.get(minimum, f"at least {minimum}")
        raise ValueError(f"{name} must be {floor}, got {value}" + (f" ({hint})" if hint else ""))
    return value


def count(value: object, name: str, hint: str = "") -> int:
    """A number of things (top classes, points, samples …): at least 1."""
    return whole_number(value, name, minimum=1, hint=hint)


def optional_count(value: object, name: str, hint: str = "") -> int | None:
    """``None`` or 0 mean "no limit / none"; otherwise at least 1 (negative numbers are refused)."""
    if value is None:
        return None
    number = whole_number(value, name, minimum=0, hint=hint)
    return number or None


def picture_side(value: object, name: str = "size", *, minimum: int = 8) -> int:
    """The side of a picture to make, in pixels: at least ``minimum``."""
    return whole_number(value, name, minimum=minimum, hint=f"a picture side in pixels, {minimum} or more")


def finite_number(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite float within ``[minimum, maximum]`` (either end optional)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "-∞" if minimum is None else f"{minimum:g}"
        high = "∞" if maximum is None else f"{maximum:g}"
        raise ValueError(f"{name} must lie in [{low}, {high}], got {number:g}")
    return number


def positive_number(value: object, name: str) -> float:
    """A finite float above 0 (a rate, a weight, a width)."""
    number = finite_number(value, name, minimum=0.0)
    if number == 0:
        raise ValueError(f"{name} must be more than 0, got 0")
    return number


def output_folder(path: str | Path, name: str = "output folder") -> Path:
    """``path`` if it is, or can be made, a writable folder; nothing is created.

    Refuses a file (``/dev/null`` included), a folder that cannot be written, and a path
    whose nearest existing parent is not a writable folder.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and not existing.is_symlink():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        kind = "a file" if existing.is_file() else "not a folder (a device, pipe or socket)"
        where = "" if existing == path else f" (its parent {str(existing)!r})"
        example = ", e.g. --out out" if name == "--out" else ""
        raise ValueError(f"{name} {str(path)!r}{where} is {kind}: give a folder{example}")
    if not existing.exists():
        raise ValueError(f"{name} {str(path)!r} cannot be created (a broken link on its way)")
    if not _can_write(existing):
        where = "" if existing == path else f" (its parent {str(existing)!r} is not writable)"
        raise ValueError(f"{name} {str(path)!r} cannot be written{where}: give a folder you can write to")
    return path


def regular_file(path: str | Path, what: str, hint: str = "") -> Path:
    """``path`` if it is an existing regular file, checked with ``os.stat`` and never opened (a FIFO would
    block, a device never end); otherwise a one-line ``ValueError`` that says what it is (``hint`` appended)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        problem = "does not exist"
    except OSError as error:
        problem = f"cannot be read ({error.strerror})"
    else:
        if stat.S_ISREG(mode):
            return path
        problem = "is a folder" if stat.S_ISDIR(mode) else "is not a regular file (a pipe, device or socket)"
    raise ValueError(f"{what} {str(path)!r} {problem}" + (f": {hint}" if hint else ""))


def _can_write(folder: Path) -> bool:
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:  # permissions can say yes where a read-only file system says no
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def argument(check: Callable[..., T], *args: object, **kwargs: object) -> Callable[[str], T]:
    """An argparse ``type=`` that reads an int or float and applies ``check`` (the library's own check)."""

    def parse(text: str) -> T:
        try:
            value: object = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check(value, *args, **kwargs)
        except (ValueError, TypeError) as error:  # argparse names the option already
            name = str(args[0]) if args else ""
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{name} ")) from None

    parse.__name__ = getattr(check, "__name__", "number")
    return parse
