"""The metrics report over a picture set: chunked, resumable, refusing other settings, memory bounded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convscope.analysis.metrics import dataset
from convscope.data.tensors import TensorPictures

METRICS = ["sparseness", "pixel_flipping", "avg_sensitivity", "random_logit", "road_morf"]


def _pictures(count: int = 10) -> TensorPictures:
    return TensorPictures(torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(0)))


def _same(one, other) -> None:
    assert one.metrics == other.metrics and one.methods == other.methods and one.pictures == other.pictures
    for method in one.methods:
        for metric in one.metrics:
            assert torch.equal(one.values[method][metric], other.values[method][metric]), (method, metric)
    assert one.text() == other.text()


def test_an_interrupted_run_resumes_to_the_report_of_one_uninterrupted_run(tiny_model, tmp_path, monkeypatch):
    whole = dataset.evaluate_set(tiny_model, _pictures(), tmp_path / "whole", ["saliency", "grad_cam"], METRICS,
                                 chunk=4)
    evaluate, calls = dataset.evaluate_methods, []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped in the second chunk
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(dataset, "evaluate_methods", stopping)
    with pytest.raises(KeyboardInterrupt):
        dataset.evaluate_set(tiny_model, _pictures(), tmp_path / "cut", ["saliency", "grad_cam"], METRICS, chunk=4)
    assert sorted(p.name for p in (tmp_path / "cut" / "chunks").iterdir()) == ["chunk_00000.pt"]
    assert not (tmp_path / "cut" / dataset.LOCK).exists()  # the lock goes with the run
    calls.clear()
    monkeypatch.setattr(dataset, "evaluate_methods", lambda *a, **k: (calls.append(1), evaluate(*a, **k))[1])
    resumed = dataset.evaluate_set(tiny_model, _pictures(), tmp_path / "cut", ["saliency", "grad_cam"], METRICS,
                                   chunk=4)
    assert len(calls) == 2  # chunks 1 and 2 only
    _same(resumed, whole)


def test_a_rerun_with_other_settings_or_changed_pictures_is_refused_in_one_line(tiny_model, tmp_path):
    dataset.evaluate_set(tiny_model, _pictures(), tmp_path, ["saliency"], ["sparseness"], chunk=4)
    with pytest.raises(ValueError, match=r"different run \(metrics: .*--overwrite") as refused:
        dataset.evaluate_set(tiny_model, _pictures(), tmp_path, ["saliency"], ["complexity"], chunk=4)
    assert "\n" not in str(refused.value)
    changed = TensorPictures(torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="changed since they were evaluated"):
        dataset.evaluate_set(tiny_model, changed, tmp_path, ["saliency"], ["sparseness"], chunk=4)
    again = dataset.evaluate_set(tiny_model, _pictures(), tmp_path, ["saliency"], ["complexity"], chunk=4,
                                 overwrite=True)
    assert again.metrics == ["complexity"] and again.pictures == 10


def test_a_folder_of_other_files_is_not_written_without_overwrite(tiny_model, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        dataset.evaluate_set(tiny_model, _pictures(), tmp_path, ["saliency"], ["sparseness"], chunk=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_check_streams_a_folder_given_with_limit_and_refuses_other_settings_on_rerun(tiny_model, tmp_path,
                                                                                    monkeypatch, capsys):
    from PIL import Image

    from convscope.cli import analysis, main

    monkeypatch.setattr(analysis, "model_from", lambda args: tiny_model)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for n in range(5):
        Image.new("RGB", (8, 8), (40 * n, 10, 200 - 30 * n)).save(folder / f"{n}.png")
    out = tmp_path / "out"
    argv = ["check", str(folder), "--limit", "3", "--methods", "saliency", "--metrics", "sparseness", "--out", str(out)]
    assert main(argv) == 0
    assert {p.name for p in out.iterdir()} == {*dataset.REPORT_FILES, dataset.CONFIG, dataset.CHUNKS}
    assert "3 pictures" in (out / "metrics.md").read_text()
    capsys.readouterr()
    assert main([*argv[:-3], "complexity", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "different run (metrics:" in error and "\n" not in error


def _peak_kilobytes(limit: int, out: Path) -> int:
    code = ("import resource, sys; from convscope.cli import main; "
            f"main(['check', 'fashion-mnist:test', '--limit', '{limit}', '--methods', 'saliency', '--metrics', "
            f"'sparseness', 'complexity', '--out', '{out}']); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_pictures(tmp_path):
    from convscope.data.opening import open_dataset

    try:
        open_dataset("fashion-mnist:test", limit=1)
    except (ValueError, OSError):
        pytest.skip("the Fashion-MNIST files are not installed")
    small, large = _peak_kilobytes(200, tmp_path / "200"), _peak_kilobytes(1000, tmp_path / "1000")
    print(f"peak RSS: {small} KB for 200 pictures, {large} KB for 1000")
    assert large - small < 25_000, (small, large)  # 5× the pictures, less than 25 MB more (one chunk is 50)
