"""What -v adds and -q keeps, and the one rule for progress bars (terminal, notebook, redirected log)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from convscope import progress
from convscope.cli import main
from convscope.logs import configure

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
needs_fashion = pytest.mark.skipif(not FASHION.is_file(), reason="Fashion-MNIST is not installed")


@pytest.fixture(autouse=True)
def normal_logging():
    yield
    configure(0)


def scan(out: Path, *flags: str) -> list[str]:
    return ["scan", "fashion-mnist:test", "--model", "fashion_cnn", "--layers", "relu1", "relu2", "--limit", "12",
            "--batch-size", "4", "--device", "cpu", "--out", str(out), *flags]


def test_verbose_shows_settings_device_model_walk_and_timings(capsys):
    assert main(["-v", "predict", "sample:chelsea", "-k", "1", "--device", "cpu", "--model", "fashion_cnn"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^convscope \S+ predict: .*device=cpu.*k=1.*model=fashion_cnn", err, re.M), err
    assert re.search(r"^torch \S+, \d+ CPU threads, CUDA ", err, re.M), err
    assert re.search(r"^model fashion_cnn on cpu \(float32\): \d+ parameters, 10 classes, input 28x28, "
                     r"loaded in \d+\.\d\d s$", err, re.M), err
    assert re.search(r"^model walk of FashionCNN: \d+ sub-modules, \d+ parameter tensors", err, re.M), err
    assert re.search(r"^convscope predict: in all: \d+\.\d\d s$", err, re.M), err


def test_without_verbose_none_of_it(capsys):
    assert main(["predict", "sample:chelsea", "-k", "1", "--device", "cpu", "--model", "fashion_cnn"]) == 0
    err = capsys.readouterr().err
    assert "in all" not in err and "model walk" not in err and "parameters" not in err


@needs_fashion
def test_verbose_scan_shows_batches_cache_hits_and_phases_quiet_only_warnings(capsys, tmp_path):
    assert main([*scan(tmp_path / "s"), "-v"]) == 0
    err = capsys.readouterr().err
    assert "0 of 3 batches of 4 saved before (cache hits), 3 to scan here; layers relu1, relu2" in err, err
    assert re.search(r"^scan: forward passes: \d+\.\d\d s$", err, re.M), err
    assert re.search(r"^scan: finalize \(statistics, top patches\): \d+\.\d\d s$", err, re.M), err
    assert main([*scan(tmp_path / "s"), "-v"]) == 0  # the finished scan is read back
    assert "is complete: read back, nothing to scan (cache hit)" in capsys.readouterr().err
    assert main([*scan(tmp_path / "q"), "-q"]) == 0
    assert capsys.readouterr().err == ""


@needs_fashion
def test_scan_writes_no_bar_into_a_redirected_log_but_draws_one_on_a_terminal(capsys, tmp_path, monkeypatch):
    assert main(scan(tmp_path / "log")) == 0  # capsys: standard error is not a terminal, as in `2> log`
    err = capsys.readouterr().err
    assert "\r" not in err and "img/s" not in err and f"wrote {tmp_path / 'log'}" in err
    monkeypatch.setattr(progress, "_stderr_is_terminal", lambda: True)
    assert main(scan(tmp_path / "tty")) == 0
    assert "\r" in capsys.readouterr().err


@pytest.mark.parametrize("place", ["terminal", "notebook", "redirected"])
@pytest.mark.parametrize("enabled", [True, None, False])
def test_one_rule_for_every_bar(monkeypatch, capsys, place, enabled):
    monkeypatch.setattr(progress, "_stderr_is_terminal", lambda: place == "terminal")
    monkeypatch.setattr(progress, "in_notebook", lambda: place == "notebook")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # no ipywidgets: the text bar
    watched = place != "redirected" and enabled is not False
    assert progress.bars_shown(enabled) is watched
    assert list(progress.progress_bar(range(3), desc="work", enabled=enabled)) == [0, 1, 2]
    assert ("work" in capsys.readouterr().err) is watched
    configure(-1)  # --quiet: never
    assert not progress.bars_shown(enabled)
    assert list(progress.progress_bar(range(3), desc="work", enabled=enabled)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_verbose_settings_keep_the_explorers_token_secret(capsys):
    from convscope.cli import build_parser, log_settings

    args = build_parser().parse_args(["explore", "--token", "s3cret", "--device", "cpu"])
    configure(1)
    log_settings(args)
    err = capsys.readouterr().err
    assert "s3cret" not in err and "token=…" in err, err
