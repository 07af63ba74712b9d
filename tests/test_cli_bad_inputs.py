"""Every bad input on the command line ends in one plain line on stderr and exit status 2, and leaves nothing.

One table of cases (command line → what the message must say); files the cases need are made by the
``files`` fixture. Commands that need a model use the small Fashion-MNIST CNN.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
from PIL import Image
from test_images_validation import png_header

from convscope.cli import main
from convscope.cli.errors import one_line

FASHION = ["--model", "fashion_cnn"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad files of every kind, by name."""
    root = tmp_path_factory.mktemp("bad")
    made = {"root": str(root)}
    (root / "a_file").write_text("not a folder")
    made["file"] = str(root / "a_file")
    (root / "empty.pth").write_bytes(b"")
    made["empty_weights"] = str(root / "empty.pth")
    (root / "notes.pth").write_text("these are not weights\n")
    made["text_weights"] = str(root / "notes.pth")
    torch.save(torch.nn.Linear(2, 2), root / "module.pth")
    made["pickled_module"] = str(root / "module.pth")
    from convscope.models import load_model

    state = load_model("fashion_cnn", device="cpu").net.state_dict()
    nan = {k: v.clone() for k, v in state.items()}
    first = next(k for k, v in nan.items() if v.is_floating_point())
    nan[first].view(-1)[0] = float("nan")
    torch.save(nan, root / "nan.pth")
    made["nan_weights"] = str(root / "nan.pth")
    wrong = dict(state)
    last = [k for k in state if k.endswith("weight")][-1]
    wrong[last] = torch.zeros(7, *state[last].shape[1:])
    torch.save(wrong, root / "wrong_shapes.pth")
    made["wrong_shapes"] = str(root / "wrong_shapes.pth")
    (root / "weights_folder").mkdir()
    made["weights_folder"] = str(root / "weights_folder")
    (root / "bomb.png").write_bytes(png_header(20000, 20000))  # the real thing is in test_images_validation
    made["bomb"] = str(root / "bomb.png")
    Image.new("L", (8000, 1)).save(root / "strip.png")
    made["strip"] = str(root / "strip.png")
    (root / "zero.png").write_bytes(b"")
    made["zero_bytes"] = str(root / "zero.png")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "pipe.png")
        made["fifo"] = str(root / "pipe.png")
    return made


def run(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``convscope ARGV`` run in this process."""
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse stops on bad arguments
        status = stop.code
    return status, capsys.readouterr().err


def assert_one_line_error(status: int, err: str, pattern: str) -> None:
    assert status == 2, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "\x1b" not in err, err
    assert __import__("re").search(pattern, lines[0]), lines[0]


CASES = [  # (name, command line with {placeholders} from the files fixture, pattern the message must match)
    ("negative k", ["predict", "-k", "-1", "sample:chelsea"], r"argument -k: must be at least 1, got -1"),
    ("zero k", ["predict", "-k", "0", "sample:chelsea"], r"argument -k: must be at least 1, got 0"),
    ("k not a number", ["predict", "-k", "many", "sample:chelsea"], r"argument -k: not a number"),
    ("negative max points", ["embed", "{root}", "--limit", "-5"], r"--limit: must be 0 or more"),
    ("negative grid", ["embed", "{root}", "--grid", "-1"], r"--grid: must be 0 or more"),
    ("negative dream size", ["dream", "sample:chelsea", "--layer", "bn1", "--size", "-1"], r"--size: must be at "
                                                                                            r"least 8, got -1"),
    ("zero classviz size", ["classviz", "--targets", "1", "--size", "0"], r"--size: must be at least 8, got 0"),
    ("nan learning rate", ["train", "--lr", "nan"], r"--lr: must be a finite number"),
    ("share above 1", ["dead-filters", "{root}", "--max-active", "2"], r"--max-active: must lie in \[0, 1\]"),
    ("out is a file", ["filters", *FASHION, "--out", "{file}"], r"--out .*a_file' is a file"),
    ("out is /dev/null", ["filters", *FASHION, "--out", "/dev/null"], r"not a folder"),
    ("out under a file", ["filters", *FASHION, "--out", "{file}/sub"], r"its parent .*a_file.* is a file"),
    ("out cannot be made", ["filters", *FASHION, "--out", "/proc/convscope-out"], r"cannot be written"),
    ("device mps", ["predict", "sample:chelsea", "--device", "mps"], r"device 'mps' .*not available"),
    ("device meta", ["predict", "sample:chelsea", "--device", "meta"], r"device 'meta' is not supported"),
    ("unknown device", ["predict", "sample:chelsea", "--device", "banana"], r"unknown device 'banana'"),
    ("weights folder", ["predict", "sample:chelsea", *FASHION, "--weights", "{weights_folder}"], r"is a directory"),
    ("weights missing", ["predict", "sample:chelsea", *FASHION, "--weights", "{root}/none.pth"], r"does not exist"),
    ("weights empty", ["predict", "sample:chelsea", *FASHION, "--weights", "{empty_weights}"], r"empty \(0 bytes\)"),
    ("weights text", ["predict", "sample:chelsea", *FASHION, "--weights", "{text_weights}"], r"not a PyTorch file"),
    ("weights module", ["predict", "sample:chelsea", *FASHION, "--weights", "{pickled_module}"],
     r"pickled Python objects.*state_dict\(\)"),
    ("weights nan", ["predict", "sample:chelsea", *FASHION, "--weights", "{nan_weights}"], r"NaN or infinite"),
    ("weights wrong shapes", ["predict", "sample:chelsea", *FASHION, "--weights", "{wrong_shapes}"],
     r"(do|does) not fit fashion_cnn"),
    ("image fifo", ["predict", "{fifo}", *FASHION], r"not a regular file"),
    ("image /dev/null", ["predict", "/dev/null", *FASHION], r"not a regular file"),
    ("decompression bomb", ["predict", "{bomb}", *FASHION], r"bomb\.png.*(decompression bomb|megapixels)"),
    ("extreme side ratio", ["predict", "{strip}", *FASHION], r"8000×1 pixels, a side ratio of 8000:1"),
    ("empty image file", ["predict", "{zero_bytes}", *FASHION], r"zero\.png.*\(0 bytes\)"),
    ("tunnel setting elsewhere", ["explain", "sample:chelsea", *FASHION, "--method", "saliency", "--nt-type",
                                  "vargrad"], r"--nt-type applies to noise_tunnel, not to --method saliency"),
    ("eigen smooth elsewhere", ["explain", "sample:chelsea", *FASHION, "--method", "saliency", "--eigen-smooth"],
     r"--eigen-smooth applies to score_cam, ablation_cam, grad_cam"),
    ("tunnel around itself", ["explain", "sample:chelsea", *FASHION, "--method", "noise_tunnel", "--around",
                              "noise_tunnel"], r"noise tunnel inside a noise tunnel"),
]


@pytest.mark.parametrize(("argv", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, pattern, files, capsys) -> None:
    if any("{fifo}" in a for a in argv) and "fifo" not in files:
        pytest.skip("no FIFOs on this system")
    if "/proc/" in " ".join(argv) and not os.path.isdir("/proc"):
        pytest.skip("no /proc")
    status, err = run([a.format(**files) for a in argv], capsys)
    assert_one_line_error(status, err, pattern)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root may write anywhere")
def test_a_read_only_out_folder_is_refused_before_any_work(tmp_path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        status, err = run(["filters", *FASHION, "--out", str(locked)], capsys)
    finally:
        locked.chmod(0o700)
    assert_one_line_error(status, err, "cannot be written")


def test_a_failing_command_leaves_no_file(tmp_path, capsys) -> None:
    out = tmp_path / "stats"
    status, err = run(["stats", "sample:coffee", *FASHION, "--layers", "nope", "--out", str(out)], capsys)
    assert_one_line_error(status, err, r"no statistics for layers \['nope'\]")
    assert not out.exists()
    out.mkdir()
    (out / "kept.txt").write_text("the user's")
    run(["stats", "sample:coffee", *FASHION, "--layers", "nope", "--out", str(out)], capsys)
    assert sorted(p.name for p in out.iterdir()) == ["kept.txt"]


def _fashion_scan(tmp_path, capsys) -> str:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for n in range(4):
        Image.new("L", (28, 28), n * 60).save(pictures / f"{n}.png")
    scan = tmp_path / "scan"
    status, err = run(["scan", str(pictures), *FASHION, "--layers", "relu1", "--out", str(scan), "--batch-size",
                       "2", "-q"], capsys)
    assert status == 0, err
    return str(scan)


def test_damaged_and_busy_scan_folders(tmp_path, capsys) -> None:
    scan = _fashion_scan(tmp_path, capsys)
    layer = next((tmp_path / "scan" / "layers").glob("*.pt"))
    layer.write_bytes(b"garbage")
    status, err = run(["dead-filters", scan], capsys)
    assert_one_line_error(status, err, r"relu1\.pt is damaged.*--overwrite")
    config = json.loads((tmp_path / "scan" / "scan.json").read_text())
    (tmp_path / "scan" / "scan.json").write_text(json.dumps({**config, "complete": False}))
    state = tmp_path / "scan" / "progress" / "rank0" / "state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"\x00\x01")
    argv = ["scan", str(tmp_path / "pictures"), *FASHION, "--layers", "relu1", "--out", scan, "--batch-size", "2",
            "-q"]
    status, err = run(argv, capsys)
    assert_one_line_error(status, err, r"state\.pt is damaged.*--overwrite")
    (tmp_path / "scan" / "scan.lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                             "started": "2026-11-28 09:00:00"}))
    status, err = run([*argv, "--overwrite"], capsys)
    assert_one_line_error(status, err, rf"being scanned by another process \(pid {os.getppid()} .*--wait")
    (tmp_path / "scan" / "scan.lock").unlink()
    status, err = run([*argv, "--overwrite"], capsys)
    assert status == 0, err  # --overwrite recovers
    status, err = run(["dead-filters", scan], capsys)
    assert status == 0, err


def test_os_errors_and_foreign_messages_become_one_plain_line() -> None:
    assert one_line(PermissionError(13, "Permission denied", "/x/y.png")) == "Permission denied: /x/y.png"
    assert one_line(ValueError("\x1b[1mbold\x1b[0m first line\nsecond line")) == "bold first line"
    assert one_line(MemoryError()).startswith("not enough memory")


def test_explain_all_says_on_the_terminal_which_methods_were_left_out(tiny_model, caplog) -> None:
    import logging

    from convscope.attribution import compare

    with caplog.at_level(logging.WARNING, logger="convscope"):
        compare(tiny_model, [torch.rand(3, 8, 8)], ["saliency", "grad_cam"], layer="fc", tile_size=16)
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 1 and left_out[0].startswith("left out Grad-CAM: "), left_out
