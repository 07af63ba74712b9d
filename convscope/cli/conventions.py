"""What every command shares: --quiet/--verbose, old flag spellings accepted with a warning, help with defaults.

One spelling per idea across commands: a flag is plural when it takes several values (``--channels 0 7 20``,
``--layers``, ``--targets``) and singular when it takes one (``--channel 12``); sizes of batches are
``--batch-size``. The spellings used before are still accepted for a while, with a warning.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from convscope.logs import get_logger

log = get_logger(__name__)

# command (as typed, sub-commands joined by a space) → {old spelling: new spelling}
RENAMED: dict[str, dict[str, str]] = {
    "featviz": {"--channel": "--channels"},
    "classviz": {"--target": "--targets"},
    "fast-style train": {"--batch": "--batch-size"},
}


def add_verbosity_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-q/--quiet`` and ``-v/--verbose``; on sub-commands they leave the top-level choice alone unless given."""
    group = parser.add_mutually_exclusive_group()
    default = 0 if top else argparse.SUPPRESS
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=default,
                       help="only warnings and errors: no progress bars, no 'wrote …' lines")
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=default,
                       help="also debug messages: settings, device, model, batch sizes, reuse, the time of each phase")


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (command name, parser) below ``parser``, sub-commands as 'fast-style train'."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                yield path, sub
                yield from commands(sub, path)


def has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)


def accept_old_spelling(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Let ``old`` set what ``new`` sets, warning once per use; ``old`` stays out of the help."""
    action = parser._option_string_actions[new]
    parser._option_string_actions[old] = action
    renames = getattr(action, "renamed_from", None)
    if renames is None:
        base = type(action)

        class Renamed(base):  # type: ignore[valid-type, misc]
            def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
                if option_string in self.renamed_from:
                    log.warning(f"{option_string} is now spelled {self.option_strings[0]}; "
                                "the old spelling will stop working in a later version")
                super().__call__(parser, namespace, values, option_string)

        action.__class__ = Renamed
        action.renamed_from = renames = set()
    renames.add(old)


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append '(default: …)' to options whose help does not say their default; never '(default: None)'."""
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        default = action.default
        text = action.help or ""
        if default is None and "%(default)s" in text:  # would print "(default: None)"
            action.help = text = text.replace(" (default: %(default)s)", "").replace("%(default)s", "none")
        if default is None or default is argparse.SUPPRESS or isinstance(default, bool) or "default" in text:
            continue
        if isinstance(default, list | tuple):
            shown = " ".join(str(value) for value in default)
        else:
            shown = str(default)
        action.help = f"{text} (default: {shown.replace('%', '%%')})".strip()


def apply(parser: argparse.ArgumentParser) -> None:
    """Verbosity options, old spellings and shown defaults on every command of ``parser``."""
    add_verbosity_options(parser, top=True)
    for name, sub in commands(parser):
        for old, new in RENAMED.get(name, {}).items():
            accept_old_spelling(sub, old, new)
        if not has_subcommands(sub):
            add_verbosity_options(sub)
        show_defaults(sub)
