"""convscope's messages go through the standard :mod:`logging` module, under the ``convscope`` logger.

A library only creates loggers; the application decides what is shown. The ``convscope`` command calls
:func:`configure` (``--quiet``: warnings and errors only, no progress bars; ``--verbose``: also debug
messages). In your own program or notebook, ``logging.basicConfig(level=logging.INFO)`` or
``convscope.logs.configure()`` shows the same messages.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = "convscope"
logging.getLogger(ROOT).addHandler(logging.NullHandler())

QUIET, NORMAL, VERBOSE = -1, 0, 1
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}


def get_logger(name: str) -> logging.Logger:
    """The logger for a convscope module (``get_logger(__name__)``): a child of ``convscope``."""
    return logging.getLogger(name if name == ROOT or name.startswith(ROOT + ".") else f"{ROOT}.{name}")


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (pytest and notebooks replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - the StreamHandler attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"convscope: {record.levelname.lower()}: {message}"
        return message


def configure(verbosity: int = NORMAL) -> logging.Logger:
    """Show convscope's messages on standard error: ``QUIET`` (-1) warnings and errors, ``NORMAL`` (0) also
    information and progress bars, ``VERBOSE`` (1) also debug messages. Calling it again replaces the setting."""
    if verbosity not in _LEVELS:
        raise ValueError(f"verbosity must be -1 (quiet), 0 (normal) or 1 (verbose), got {verbosity!r}")
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(_Format())
    logger.addHandler(handler)
    logger.setLevel(_LEVELS[verbosity])
    logger.propagate = False
    return logger


@contextmanager
def timed(logger: logging.Logger, what: str) -> Iterator[None]:
    """Log (debug, shown by ``--verbose``) how long the block took: ``"{what}: 1.23 s"``, also when it raised."""
    start = time.perf_counter()
    try:
        yield
    finally:
        logger.debug("%s: %.2f s", what, time.perf_counter() - start)


def is_quiet() -> bool:
    """True when informational messages (and with them progress bars) are switched off for convscope."""
    return not logging.getLogger(ROOT).isEnabledFor(logging.INFO) and logging.getLogger(ROOT).level != logging.NOTSET
