"""Running ``convscope`` in this process for tests: exit status, stderr, and a deadline instead of a hang."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from convscope.cli import main


class TooSlow(BaseException):
    """Raised by :func:`deadline` (a BaseException, so that no ``except Exception`` in the command catches it)."""


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Stop the block with :class:`TooSlow` after ``seconds`` (a command that blocks on a pipe, or works on a
    value it should have refused). Main thread only; elsewhere the block runs unguarded."""
    def stop(signum, frame):  # noqa: ANN001
        raise TooSlow(f"{what} was still running after {seconds:g} s (a hang, or work on a value to refuse)")

    try:
        previous = signal.signal(signal.SIGALRM, stop)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(argv: list[str], capsys, seconds: float = 60) -> tuple[int, str]:
    """Exit status and stderr of ``convscope ARGV -q`` (no progress bars) run in this process, stopped after
    ``seconds``."""
    argv = [*argv, "-q"] if "-q" not in argv else argv
    capsys.readouterr()
    with deadline(seconds, "convscope " + " ".join(argv)):
        try:
            status = main(argv)
        except SystemExit as stop:  # argparse stops on bad arguments
            status = stop.code
    return status, capsys.readouterr().err


def error_lines(err: str) -> list[str]:
    """The lines of stderr that are not log messages (warnings, information)."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]


def assert_refused(status: int, err: str, pattern: str = "") -> None:
    """Exit status 2, one plain line (no traceback, no terminal escapes) that matches ``pattern``."""
    assert "Traceback" not in err, err
    assert status == 2, f"exit {status} instead of a refusal: {err}"
    lines = error_lines(err)
    assert len(lines) == 1 and "\x1b" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
