"""One progress bar for terminals and notebooks, without ipywidgets.

``tqdm.auto`` needs ipywidgets in Jupyter and otherwise prints "IProgress not found"; the plain text bar works
in both places (Jupyter draws the carriage returns in place), so it is the one used unless ipywidgets is
installed in a notebook.

One rule for every command and function: a bar is drawn where someone watches it — a terminal or a notebook —
and never written into a log redirected to a file or a pipe (``convscope scan … 2> log``: the log keeps the
messages, ``--verbose`` adds each phase's time), nor when convscope's logging is quiet (``convscope --quiet``,
:func:`convscope.logs.configure` with ``QUIET``, or the ``convscope`` logger set above ``INFO``).
``progress=False`` hides a bar anywhere.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from tqdm.std import TqdmWarning
from tqdm.std import tqdm as text_bar

from convscope.logs import is_quiet


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


_this_thread = threading.local()


def watch_progress(make_bar: Callable[..., text_bar] | None) -> None:
    """Bars made on this thread from now on come from ``make_bar(iterable, **options)`` whatever ``enabled`` says
    (the explorer's worker reads how far its job has come from them); None: the usual bars again."""
    _this_thread.make_bar = make_bar


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool | None = True, **options: Any) -> text_bar:
    """A ``tqdm`` bar over ``iterable`` (or with ``total=``) on standard error.

    ``enabled``: False hides it; True or None show it in terminals and notebooks only, never in logs
    redirected to a file (see the module's rule). ``options`` go to ``tqdm`` (``desc``, ``total``, ``unit``,
    ``leave``, ``delay`` …).
    A thread that called :func:`watch_progress` gets its own kind of bar instead.
    """
    make_bar = getattr(_this_thread, "make_bar", None)
    if make_bar is not None:
        return make_bar(iterable, **options)
    disable = not bars_shown(enabled)
    if not disable and in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as widget_bar

        return widget_bar(iterable, disable=disable, **options)
    options.setdefault("file", sys.stderr)
    return text_bar(iterable, disable=disable, **options)


def bars_shown(enabled: bool | None = None) -> bool:
    """Whether :func:`progress_bar` with this ``enabled`` would show a bar now."""
    return enabled is not False and (in_notebook() or _stderr_is_terminal()) and not is_quiet()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _import_tqdm_auto_quietly() -> None:
    """Dependencies (huggingface_hub, through timm) use ``tqdm.auto``, which in Jupyter without ipywidgets warns
    "IProgress not found" and then uses the text bar anyway; importing it here first, silently, keeps that
    fallback without the warning."""
    if in_notebook() and "tqdm.autonotebook" not in sys.modules and importlib.util.find_spec("ipywidgets") is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TqdmWarning)
            import tqdm.autonotebook  # noqa: F401


_import_tqdm_auto_quietly()
