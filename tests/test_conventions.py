"""What every command shares: --version, --quiet/--verbose through logging, one flag spelling, real defaults."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
import sys

import pytest

import convscope
from convscope.cli import build_parser, main
from convscope.cli.conventions import RENAMED, commands
from convscope.logs import configure, get_logger, is_quiet
from convscope.progress import bars_shown, progress_bar


@pytest.fixture(autouse=True)
def normal_logging():
    yield
    configure(0)


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"convscope {convscope.__version__}"


def test_python_dash_m_is_the_command():
    import subprocess
    import sys

    found = subprocess.run([sys.executable, "-m", "convscope", "--version"], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == f"convscope {convscope.__version__}"


def test_quiet_hides_information_but_not_results(capsys, tmp_path):
    assert main(["filters", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert f"wrote {tmp_path}" in capsys.readouterr().err
    assert main(["filters", "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["-q", "predict", "sample:chelsea", "-k", "1", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "tiger cat" in captured.out and captured.err == ""


def test_verbosity_sets_the_convscope_logger():
    main(["-v", "layers", "--device", "cpu"])
    assert get_logger("x").isEnabledFor(logging.DEBUG)
    main(["layers", "--device", "cpu", "--quiet"])
    assert is_quiet() and not get_logger("x").isEnabledFor(logging.INFO) and not bars_shown(True)
    with pytest.raises(SystemExit):
        main(["layers", "--quiet", "--verbose"])  # one or the other
    with pytest.raises(ValueError, match="verbosity"):
        configure(3)


@pytest.mark.parametrize("command, old, new, value", [
    (["featviz", "--layer", "bn1"], "--channel", "channels", ["1", "2"]),
    (["classviz"], "--target", "targets", ["tabby"]),
    (["fast-style", "train", "sample:brick"], "--batch", "batch_size", ["3"]),
])
def test_old_spellings_still_work_with_a_warning(caplog, command, old, new, value):
    parser = build_parser()
    with caplog.at_level(logging.WARNING, logger="convscope"):
        args = parser.parse_args([*command, old, *value])
    parsed = getattr(args, new)
    assert [str(v) for v in (parsed if isinstance(parsed, list) else [parsed])] == value
    assert f"{old} is now spelled --{new.replace('_', '-')}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convscope"):
        parser.parse_args([*command, f"--{new.replace('_', '-')}", *value])
    assert caplog.text == ""


def test_the_command_shows_the_old_spelling_warning(capsys, tmp_path):
    assert main(["featviz", "--layer", "bn1", "--channel", "1", "--steps", "1", "--size", "32", "--device", "cpu",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert "convscope: warning: --channel is now spelled --channels" in capsys.readouterr().err


def test_one_spelling_across_commands_and_real_defaults_in_help():
    parser = build_parser()
    spellings: dict[str, set[str]] = {}
    for name, sub in commands(parser):
        old = set(RENAMED.get(name, {}))
        for action in sub._actions:
            shown = [s for s in action.option_strings if s not in old]
            for option in shown:
                spellings.setdefault(option.rstrip("s"), set()).add(option)
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            text = sub.formatter_class(prog="x")._expand_help(action)
            assert "(default: None)" not in text, (name, action.option_strings)
            if action.default not in (None, False, True, argparse.SUPPRESS) and action.option_strings[0] != "--help":
                assert "default" in text, (name, action.option_strings, text)
        assert not {"--batch", "--channel"} & {s for a in sub._actions for s in a.option_strings
                                               if a.nargs in ("+", "*")}, name
    assert "--batch" not in {s for group in spellings.values() for s in group}
    help_text = next(sub for name, sub in commands(parser) if name == "scan").format_help()
    assert "(default: None)" not in help_text and "fashion_cnn for fashion-mnist" in help_text


def test_progress_bar_without_ipywidgets_and_quiet(capsys, monkeypatch):
    monkeypatch.setattr("convscope.progress._stderr_is_terminal", lambda: True)  # bars are drawn where watched
    bar = progress_bar(range(3), desc="work", enabled=True)
    assert list(bar) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "work" in err and "IProgress" not in err
    configure(-1)
    assert list(progress_bar(range(3), desc="hidden", enabled=True)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_check_announces_each_study_and_shows_a_bar_in_each(tiny_net, tmp_path, monkeypatch, capsys):
    from convscope.analysis import run_checks
    from convscope.models import Model, Preprocess

    monkeypatch.setenv("CONVSCOPE_FASHION_MNIST", str(tmp_path / "nowhere"))  # no data randomisation: faster
    model = Model(tiny_net, preprocess=Preprocess(resize=32, crop=32, mean=(0.0,) * 3, std=(1.0,) * 3),
                  class_names=["bright", "dark", "contrast"], name="tiny")
    configure(0)
    monkeypatch.setattr("convscope.progress._stderr_is_terminal", lambda: True)  # bars are drawn where watched
    run_checks(model, tmp_path / "out", methods=["saliency"], photos=["chelsea"], steps=2, log=lambda _: None,
               progress=True)
    err = capsys.readouterr().err
    for phase in ("[1/4] cascading randomisation", "[3/4] deletion and insertion", "[4/4] pointing game"):
        assert phase in err
    for bar, total in (("cascading randomisation", "/2 "), ("deletion/insertion", "/1 "), ("pointing game", "/1 ")):
        assert re.search(rf"{bar}: +\d+%\|.*{total}", err), err  # a bar with its total (stages, methods)


def test_gallery_logs_each_figure_with_its_time(caplog, tmp_path):
    import torch

    from convscope.render import Picture
    from convscope.render.gallery import Gallery

    gallery = Gallery(tmp_path)
    with caplog.at_level(logging.INFO, logger="convscope"):
        for name in ("a.png", "b.png"):
            gallery.add("Section", name, Picture(torch.rand(3, 8, 8)), f"Figure {name}")
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0] for m in messages] == ["  Figure a.png → a.png", "  Figure b.png → b.png"]
    assert all(r.getMessage().endswith(" s)") for r in caplog.records)


@pytest.mark.skipif(importlib.util.find_spec("ipywidgets") is not None, reason="with ipywidgets tqdm.auto is quiet")
def test_no_iprogress_warning_in_a_notebook_without_ipywidgets(monkeypatch):
    import types
    import warnings

    from convscope import progress

    class ZMQInteractiveShell:  # what a Jupyter kernel's get_ipython() returns
        config = {"IPKernelApp": {}}

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=ZMQInteractiveShell))
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))  # tqdm looks
    assert progress.in_notebook()

    def import_tqdm_auto() -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import tqdm.auto  # noqa: F401 - what huggingface_hub does, through timm
        return [str(w.message) for w in caught]

    for name in ("tqdm.autonotebook", "tqdm.auto"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert any("IProgress not found" in m for m in import_tqdm_auto())  # the warning this guards against
    for name in ("tqdm.autonotebook", "tqdm.auto"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    progress._import_tqdm_auto_quietly()
    assert not [m for m in import_tqdm_auto() if "IProgress" in m]
    assert "notebook" not in str(sys.modules["tqdm.auto"].tqdm.__mro__)  # the text bar, not the widget
