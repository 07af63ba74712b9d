"""What every command shares: --quiet/--verbose, old flag spellings accepted with a warning, help with defaults.

One spelling per idea across commands: a flag is plural when it takes several values (``--channels 0 7 20``,
``--layers``, ``--targets``) and singular when it takes one (``--channel 12``); sizes of batches are
``--batch-size``. The spellings used before are still accepted for a while, with a warning.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from convscope.logs import get_logger
from convscope.suggestions import canonical, unknown

log = get_logger(__name__)

# command (as typed, sub-commands joined by a space) → {old spelling: new spelling}
RENAMED: dict[str, dict[str, str]] = {
    "featviz": {"--channel": "--channels"},
    "classviz": {"--target": "--targets"},
    "fast-style train": {"--batch": "--batch-size"},
    # one spelling per concept: how many pictures or channels are used
    "filters": {"--max-filters": "--max-channels"},
    "probe": {"--max-train": "--train-pictures", "--max-test": "--test-pictures"},
    "generalise": {"--max-test": "--test-pictures"},
    "embed": {"--max-points": "--limit"},
    # one concept per spelling: --size is a picture's side, --plain-… runs without a shortcut, several values: plural
    "explain": {"--size": "--occluder-size", "--stride": "--occluder-stride", "--target": "--targets"},
    "explain-set": {"--size": "--occluder-size", "--stride": "--occluder-stride", "--plain": "--bare-rate"},
    "invariance": {"--target": "--targets"},
    # the data set is the first argument (DATA) of every command that reads one
    "train": {"--data": "data"},
    "ablate": {"--data": "data"},
    "evolution": {"--data": "data"},
}


# the options every command takes, unless it is named below with the reason (the README lists the same)
COMMON = ("--model", "--weights", "--device", "--out", "-q", "-v")
WITHOUT_COMMON: dict[str, dict[str, str]] = {
    **{name: dict.fromkeys(("--model", "--weights"), "the scan folder names its model and weights, which are "
                           "reloaded") for name in ("top-patches", "neighbors")},
    **{name: {**dict.fromkeys(("--model", "--weights"), "the scan folder names its model and weights"),
              "--device": "runs no model: reads the scan's saved features"} for name in ("embed", "dead-filters")},
    "train": dict.fromkeys(("--model", "--weights"), "trains the Fashion-MNIST CNN from scratch"),
    "ablate": dict.fromkeys(("--model", "--weights"), "trains its own variants of the network from scratch"),
    "defences": dict.fromkeys(("--model", "--weights"), "the models compared are its RUNS arguments"),
    "demo": {"--weights": "the gallery shows a shipped model with its own weights (--model picks it)"},
    "explore": {"--out": "writes nothing but its cache (--cache)"},
    "fast-style": dict.fromkeys(("--model", "--weights", "--device", "--out"), "a group: train and apply take them"),
    "fast-style apply": dict.fromkeys(("--model", "--weights"), "runs the trained network file NETWORK"),
}
# one concept per spelling: a word that every help of an option spelled so contains
MEANINGS = {"--size": "side", "--limit": "pictures", "--seed": "seed", "--out": "folder", "--device": "cuda",
            "--steps": "steps", "--train-pictures": "training pictures", "--test-pictures": "test pictures"}
# an option that takes several values is plural (--channels 0 7 20), but for these words
NOT_PLURAL = {"--compare": "a verb: compare these weights files", "--only": "a verb: only these sections",
              "--content": "a mass noun: the content pictures",
              "--comparison": "Finer-CAM's comparison set of similar classes (pytorch-grad-cam's name)"}
# the commands whose data set is an option, not their first argument (DATA), with the reason
DATA_AS_OPTION = {"defences": "its positional arguments are the training runs compared"}


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
    """Let ``old`` set what ``new`` sets, warning once per use; ``old`` stays out of the help. ``new`` is an option
    string, or the name of a positional argument (``--data X`` for ``DATA``)."""
    action = parser._option_string_actions.get(new) or next(a for a in parser._actions if a.dest == new)
    parser._option_string_actions[old] = action
    renames = getattr(action, "renamed_from", None)
    if renames is None:
        base = type(action)

        class Renamed(base):  # type: ignore[valid-type, misc]
            def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
                given = f"_{self.dest}_given_as_option"
                if option_string in self.renamed_from:
                    now = (f"spelled {self.option_strings[0]}" if self.option_strings else
                           f"given without its name, as the argument {(self.metavar or self.dest).upper()}")
                    log.warning(f"{option_string} is now {now}; the old spelling will stop working in a later version")
                    setattr(namespace, given, True)
                elif option_string is None and getattr(namespace, given, False) and values == self.default:
                    return  # the positional, left out, does not undo the old option
                super().__call__(parser, namespace, values, option_string)

        action.__class__ = Renamed
        renames = set()
        setattr(action, "renamed_from", renames)  # noqa: B010 - an attribute argparse.Action does not declare
    renames.add(old)


def forgiving_choices(action: argparse.Action) -> None:
    """A choice of names is read whatever its case and hyphens or underscores (``--method grad-cam``), and an
    unknown one is answered with the closest (``--method gradcam``: did you mean 'grad_cam'?)."""
    names = [] if isinstance(action, argparse._SubParsersAction) else list(action.choices or ())
    if not names or not all(isinstance(n, str) for n in names) or getattr(action.type, "forgiving", False):
        return
    given_type = action.type
    kind = (action.metavar if isinstance(action.metavar, str) else action.dest.replace("_", " ")).lower()

    def read(text: str) -> str:
        value = str(given_type(text)) if callable(given_type) else text
        found = canonical(value, names)
        if found not in names:
            raise argparse.ArgumentTypeError(str(unknown(kind, value, names, hint="choose from " + ", ".join(names))))
        return found

    read.forgiving = True  # type: ignore[attr-defined]
    read.__name__ = kind  # argparse names the type in its own messages
    action.type = read


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
        add_verbosity_options(sub)  # a group too: `convscope fast-style -q train …`
        show_defaults(sub)
        for action in sub._actions:
            forgiving_choices(action)
