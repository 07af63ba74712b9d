"""One grammar for every command, read from the parsers: a new command or option that breaks it fails here.

The common options (or the README's reason why not), a help line for every option, one concept per spelling
and one spelling per concept, old spellings still accepted with one warning, forgiving names of choices.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import pytest

from convscope.attribution.explain import make_method
from convscope.cli import build_parser, main
from convscope.cli.conventions import (
    COMMON,
    DATA_AS_OPTION,
    MEANINGS,
    NOT_PLURAL,
    RENAMED,
    WITHOUT_COMMON,
    commands,
)
from convscope.logs import configure

README = Path(__file__).resolve().parents[1] / "README.md"
# old spellings that another command still uses with a meaning of its own (one value, a picture's side …)
STILL_CURRENT = {"--target": "one class", "--channel": "one channel", "--size": "a picture's side",
                 "--data": "defences' data set"}


@pytest.fixture(autouse=True)
def normal_logging():
    yield
    configure(0)


def every_command() -> list[tuple[str, argparse.ArgumentParser]]:
    return list(commands(build_parser()))


def shown(parser: argparse.ArgumentParser, name: str) -> set[str]:
    old = set(RENAMED.get(name, {}))
    return {s for a in parser._actions for s in a.option_strings if s not in old}


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return parser.formatter_class(prog="x")._expand_help(action) if action.help else ""


def test_every_command_takes_the_common_options_or_says_why_not():
    for name, parser in every_command():
        missing = {option for option in COMMON if option not in shown(parser, name)}
        assert missing == set(WITHOUT_COMMON.get(name, {})), (
            f"{name} lacks {sorted(missing)}: add them, or name them with the reason in "
            "conventions.WITHOUT_COMMON and in the README's table")
    stale = set(WITHOUT_COMMON) - {name for name, _ in every_command()}
    assert not stale, f"WITHOUT_COMMON names commands that are gone: {stale}"


def test_the_readme_lists_exactly_the_commands_without_them():
    text = README.read_text()
    table = text[text.index("| command | lacks | why |"):]
    table = table[:table.index("\n\n")]
    listed: dict[str, set[str]] = {}
    for row in table.splitlines()[2:]:
        names, lacks = row.split("|")[1:3]
        for name in re.findall(r"`([^`]+)`", names):
            listed[name] = set(re.findall(r"`([^`]+)`", lacks))
    assert listed == {name: set(options) for name, options in WITHOUT_COMMON.items()}


def test_every_option_has_a_help_line_beyond_its_default():
    bare = [f"{name} {action.option_strings[0]}" for name, parser in every_command() for action in parser._actions
            if action.option_strings and action.help != argparse.SUPPRESS
            and not re.sub(r"\(default: .*\)$", "", help_text(parser, action)).strip()]
    assert not bare, f"options without a help line: {bare}"


def test_one_concept_per_spelling():
    for name, parser in every_command():
        for action in parser._actions:
            text = help_text(parser, action).lower()
            for option in set(action.option_strings) & set(MEANINGS):
                assert MEANINGS[option] in text, f"{name} {option} means something else: {action.help!r}"
            plural = [s for s in action.option_strings if s.startswith("--") and s not in RENAMED.get(name, {})]
            if action.nargs in ("+", "*") and plural:
                assert plural[0].endswith("s") or plural[0] in NOT_PLURAL, (
                    f"{name} {plural[0]} takes several values: spell it in the plural")
            if action.dest == "data" and action.option_strings and not set(action.option_strings) - {"--data"}:
                assert name in DATA_AS_OPTION, f"{name}: the data set is the first argument, DATA, not --data"


def test_one_spelling_per_concept():
    current = {option for name, parser in every_command() for option in shown(parser, name)}
    retired = {old for renames in RENAMED.values() for old in renames} - set(STILL_CURRENT)
    assert not retired & current, f"retired spellings used again: {retired & current}"
    for name, renames in RENAMED.items():
        parser = dict(every_command())[name]
        for old, new in renames.items():
            action = parser._option_string_actions[old]
            assert new in action.option_strings or action.dest == new, (name, old, new)
            assert not re.search(re.escape(old) + r"(?![\w-])", parser.format_help()), (
                f"{name}: the old spelling {old} is still in the help")


@pytest.mark.parametrize("old, new", [
    (["train", "--data", "runs/data", "--epochs", "2"], ["train", "runs/data", "--epochs", "2"]),
    (["train", "--epochs", "2", "--data", "runs/data"], ["train", "runs/data", "--epochs", "2"]),
    (["explain", "sample:chelsea", "--size", "8", "--stride", "4"],
     ["explain", "sample:chelsea", "--occluder-size", "8", "--occluder-stride", "4"]),
    (["explain", "sample:chelsea", "--target", "tabby", "tiger"], ["explain", "sample:chelsea", "--targets", "tabby",
                                                                   "tiger"]),
    (["explain-set", "samples", "--plain"], ["explain-set", "samples", "--bare-rate"]),
    (["probe", "fashion-mnist", "--layers", "relu1", "--max-train", "9", "--max-test", "3"],
     ["probe", "fashion-mnist", "--layers", "relu1", "--train-pictures", "9", "--test-pictures", "3"]),
    (["embed", "scans/x", "--max-points", "7"], ["embed", "scans/x", "--limit", "7"]),
    (["filters", "--max-filters", "4"], ["filters", "--max-channels", "4"]),
])
def test_old_spellings_still_work_with_one_warning_line(caplog, old, new):
    with caplog.at_level(logging.WARNING, logger="convscope"):
        then = vars(build_parser().parse_args(old))
    warnings = [r.getMessage() for r in caplog.records]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convscope"):
        now = vars(build_parser().parse_args(new))
    assert not caplog.records
    assert {k: v for k, v in then.items() if not k.startswith("_")} == now
    assert warnings and all("\n" not in w and "will stop working" in w for w in warnings), warnings


def test_every_choice_is_read_with_hyphens_or_underscores():
    for name, parser in every_command():
        for action in parser._actions:
            names = action.choices if not isinstance(action, argparse._SubParsersAction) else None
            if names and all(isinstance(n, str) for n in names):
                for choice in names:
                    variant = choice.replace("_", "-") if "_" in choice else choice.replace("-", "_").upper()
                    assert action.type(variant) == choice, (name, action.option_strings, choice)


def test_a_misspelt_method_gets_a_did_you_mean(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["explain", "sample:chelsea", "--method", "gradcam", "--device", "cpu"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'grad_cam'" in err, err
    args = build_parser().parse_args(["explain", "sample:chelsea", "--method", "Grad-CAM"])
    assert args.method == "grad_cam"


def test_the_library_reads_method_names_the_same_way(tiny_model):
    assert make_method("guided-backprop", tiny_model).name == "guided_backprop"
    with pytest.raises(ValueError, match="did you mean 'grad_cam'"):
        make_method("gradcam", tiny_model)
    from convscope.explore.state import Explorer

    assert Explorer(tiny_model, methods=["Grad-CAM", "saliency"]).methods == ["grad_cam", "saliency"]


def test_the_fast_style_group_takes_quiet_and_verbose():
    assert build_parser().parse_args(["fast-style", "-q", "apply", "net.pt", "a.png"]).verbosity == -1
