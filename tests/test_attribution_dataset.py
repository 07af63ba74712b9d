"""Attribution over a picture set: chunk files, a resume that gives byte-identical files, the centre/border summary."""

from __future__ import annotations

import csv

import pytest
import torch
from scan_worker import pictures, small_model
from torch import nn

from convscope.attribution import GradCAM
from convscope.attribution.dataset import SetExplainer, centre_share, explain_set, load_chunks, read_config
from convscope.attribution.dataset_summary import summarise
from convscope.data import TensorPictures
from convscope.models import Model, Preprocess

pytestmark = pytest.mark.usefixtures("one_thread")


class FailingPictures(TensorPictures):
    """The same pictures, but reading picture ``fail_at`` raises (an interruption in the middle of a run)."""

    def __init__(self, source: TensorPictures, fail_at: int) -> None:
        super().__init__(source.items, source.labels())
        self.fail_at = fail_at

    def picture(self, index: int) -> torch.Tensor:
        if index == self.fail_at:
            raise KeyboardInterrupt
        return super().picture(index)


def files(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((folder / "chunks").glob("*.pt"))}


def test_chunks_hold_the_methods_maps_with_targets_scores_and_ids(tmp_path):
    model, pics = small_model(), pictures()
    run = explain_set(model, pics, tmp_path, "grad_cam", target="top", batch_size=5, progress=False)
    assert (run.count, run.explained) == (len(pics), len(pics)) and run.rate > 0
    chunks = load_chunks(tmp_path)
    assert [len(c["images"]) for c in chunks] == [5, 5, 5, 5, 3]
    images = torch.cat([c["images"] for c in chunks])
    assert torch.equal(images, torch.arange(len(pics)))
    inputs = model.preprocess(torch.stack([pics.picture(i) for i in range(len(pics))]))
    output = model.net(inputs)
    classes = torch.cat([c["classes"] for c in chunks])
    assert torch.equal(classes, output.argmax(1))
    torch.testing.assert_close(torch.cat([c["scores"] for c in chunks]), output.amax(1))
    torch.testing.assert_close(torch.cat([c["probabilities"] for c in chunks]), output.softmax(1).amax(1))
    expected = GradCAM(model).attribute(inputs, target=classes)  # the library's method on the whole set at once
    torch.testing.assert_close(torch.cat([c["maps"] for c in chunks]), expected, rtol=1e-5, atol=1e-6)
    assert chunks[0]["names"] == [pics.name(i) for i in range(5)]
    assert read_config(tmp_path)["complete"] is True
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "summary.png").is_file()


def test_an_interrupted_run_resumes_to_byte_identical_files(tmp_path):
    model, pics = small_model(), pictures()
    explain_set(model, pics, tmp_path / "whole", "saliency", target="true", batch_size=4, progress=False)
    with pytest.raises(KeyboardInterrupt):
        explain_set(model, FailingPictures(pics, fail_at=13), tmp_path / "resumed", "saliency", target="true",
                    batch_size=4, progress=False)
    assert sorted(files(tmp_path / "resumed")) == ["chunk_00000.pt", "chunk_00001.pt", "chunk_00002.pt"]
    assert not (tmp_path / "resumed" / "summary.csv").exists()
    again = explain_set(model, pics, tmp_path / "resumed", "saliency", target="true", batch_size=4, progress=False)
    assert again.explained == len(pics) - 12
    assert files(tmp_path / "resumed") == files(tmp_path / "whole")
    assert (tmp_path / "resumed" / "summary.csv").read_bytes() == (tmp_path / "whole" / "summary.csv").read_bytes()


def test_a_folder_of_another_run_is_refused_before_anything_changes(tmp_path):
    model, pics = small_model(), pictures()
    explain_set(model, pics, tmp_path, "grad_cam", batch_size=8, progress=False)
    before = files(tmp_path)
    with pytest.raises(ValueError, match="different run .method"):
        explain_set(model, pics, tmp_path, "saliency", batch_size=8, progress=False)
    assert files(tmp_path) == before
    explain_set(model, pics, tmp_path, "saliency", batch_size=8, progress=False, overwrite=True)
    assert read_config(tmp_path)["method"] == "saliency"


def test_a_resume_over_changed_pictures_is_refused(tmp_path):
    model, pics = small_model(), pictures()
    explain_set(model, pics, tmp_path, "grad_cam", batch_size=8, progress=False)
    pics.items[9] = 1 - pics.items[9]  # picture 9, in chunk 1, is not the picture that was explained
    with pytest.raises(ValueError, match=r"pictures changed since they were explained \(chunks \[1\]"):
        explain_set(model, pics, tmp_path, "grad_cam", batch_size=8, progress=False)


def test_bad_settings_fail_before_a_folder_is_made(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="labelled"):
        explain_set(model, TensorPictures(torch.rand(4, 3, 8, 8)), tmp_path / "a", target="true", progress=False)
    with pytest.raises(ValueError, match="channel and neuron"):
        SetExplainer(model, target="channel:relu1:0")
    with pytest.raises(ValueError, match="centre"):
        SetExplainer(model, centre=1.5)
    for size in (0, True, 2.5):
        with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1"):
            explain_set(model, pictures(), tmp_path / "a", batch_size=size, progress=False)
    assert not (tmp_path / "a").exists()


def border_model() -> Model:
    """Flatten → linear, 2 classes on 3×8×8 pictures: class 0 weighs only the border, class 1 every pixel alike."""
    weights = torch.ones(2, 3, 8, 8)
    weights[0, :, 2:6, 2:6] = 0.0  # the centre box of a side-8 picture at centre=0.5 is rows and columns 2…5
    linear = nn.Linear(3 * 8 * 8, 2)
    with torch.no_grad():
        linear.weight.copy_(weights.flatten(1))
    return Model(nn.Sequential(nn.Flatten(), linear), preprocess=Preprocess(resize=None, crop=8, mean=(0, 0, 0),
                                                                            std=(1, 1, 1)),
                 class_names=["border", "even"])


def test_the_summary_finds_a_model_that_looks_at_the_border(tmp_path):
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0])
    pics = TensorPictures(torch.rand(7, 3, 8, 8, generator=torch.Generator().manual_seed(0)), labels,
                          class_names=["border", "even"])
    explain_set(border_model(), pics, tmp_path, "saliency", target="true", batch_size=3, progress=False)
    rows = {row.name: row for row in summarise(tmp_path)}
    assert rows["border"].pictures == 4 and rows["even"].pictures == 3 and rows["all"].pictures == 7
    assert rows["border"].centre_share == pytest.approx(0.0, abs=1e-7)  # saliency = |weights|: nothing in the centre
    assert rows["even"].centre_share == pytest.approx(0.25)  # an even map: the centre's area share
    assert rows["all"].centre_share == pytest.approx(3 * 0.25 / 7)
    assert rows["even"].centre_area == pytest.approx(0.25)
    with open(tmp_path / "summary.csv", newline="") as handle:
        table = {row["name"]: row for row in csv.DictReader(handle)}
    assert float(table["border"]["border_share"]) == pytest.approx(1.0)
    assert float(table["even"]["centre_ratio"]) == pytest.approx(1.0)


def test_the_plain_rate_counts_the_pictures_of_the_batches_it_ran():
    from convscope.attribution.dataset import plain_rate

    rate = plain_rate(small_model(), pictures(), batch_size=4, chunks=2)
    assert 0 < rate < float("inf")  # pictures per second over 2 batches of 4


def test_true_labels_are_matched_to_the_models_classes_by_name(tmp_path):
    model = border_model()  # classes 'border', 'even'
    pics = TensorPictures(torch.rand(3, 3, 8, 8), [0, 1, 0], class_names=["even", "border"])
    explain_set(model, pics, tmp_path, "saliency", target="true", progress=False)
    assert load_chunks(tmp_path)[0]["classes"].tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="by name"):
        explain_set(model, TensorPictures(torch.rand(1, 3, 8, 8), [0], class_names=["zebra"]), tmp_path / "z",
                    target="true", progress=False)


def test_centre_share_by_hand():
    heat = torch.zeros(3, 4, 4)
    heat[0, 1, 1] = 2.0  # inside the centre box (rows and columns 1…2)
    heat[1, 0, 0], heat[1, 2, 2] = 3.0, 1.0
    share = centre_share(heat, 0.5)
    assert share[0] == 1.0 and share[1] == 0.25 and share[2].isnan()  # an all-zero map has no share


@pytest.mark.slow  # two torchrun processes start up (~40 s on a busy 2-core CPU)
def test_two_gloo_processes_write_the_same_files_as_one(tmp_path):
    from pathlib import Path

    from explain_set_worker import run
    from test_scan_distributed import run_two_processes

    run_two_processes(Path(__file__).with_name("explain_set_worker.py"), tmp_path / "two")
    run(str(tmp_path / "one"))
    assert len(files(tmp_path / "one")) == 8  # 23 pictures in chunks of 3, half written by each process
    assert files(tmp_path / "two") == files(tmp_path / "one")
    assert (tmp_path / "two" / "summary.csv").read_bytes() == (tmp_path / "one" / "summary.csv").read_bytes()


def test_the_command_explains_a_set_resumes_and_refuses_bad_input(capsys, tmp_path):
    from test_scan_data import write_fake_fashion

    from convscope.cli import main

    write_fake_fashion(tmp_path / "fashion", test=7)
    argv = ["explain-set", f"{tmp_path / 'fashion'}:test", "--target", "true", "--batch-size", "3", "--out",
            str(tmp_path / "maps"), "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Grad-CAM on fashion_cnn" in out and "explained 7 pictures" in out and "pictures/s" in out
    assert sorted(p.name for p in (tmp_path / "maps" / "chunks").iterdir()) == [
        "chunk_00000.pt", "chunk_00001.pt", "chunk_00002.pt"]
    assert main(argv) == 0
    assert "all 7 pictures were already explained" in capsys.readouterr().out
    assert main([*argv, "--target", "neuron:conv1:0"]) == 2
    assert "channel and neuron targets are for `convscope explain IMAGE`" in capsys.readouterr().err
    assert main([*argv, "--method", "saliency"]) == 2
    assert "different run (method" in capsys.readouterr().err


def test_explain_with_a_set_runs_as_explain_set_and_gives_the_same_files(capsys, tmp_path):
    from test_scan_data import write_fake_fashion

    from convscope.cli import main

    write_fake_fashion(tmp_path / "fashion", test=5)
    data, common = f"{tmp_path / 'fashion'}:test", ["--batch-size", "2", "--device", "cpu"]
    assert main(["explain-set", data, "--target", "true", *common, "--out", str(tmp_path / "a")]) == 0
    argv = ["explain", data, "--method", "grad_cam", "--targets", "true", *common, "--out", str(tmp_path / "b")]
    assert main(argv) == 0
    assert "Grad-CAM on fashion_cnn" in capsys.readouterr().out  # the set's own model, as explain-set chooses
    assert files(tmp_path / "b") == files(tmp_path / "a") and len(files(tmp_path / "a")) == 3
    photos = tmp_path / "photos"
    photos.mkdir()
    torch.manual_seed(0)
    for k in range(2):
        from PIL import Image

        Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(photos / f"p{k}.png")
    assert main(["explain", str(photos), "--set", "--model", "fashion_cnn", *common, "--out", str(tmp_path / "c")]) == 0
    assert len(files(tmp_path / "c")) == 1
    assert main(["explain", data, "--method", "all", *common, "--out", str(tmp_path / "d")]) == 2
    assert "one method at a time" in capsys.readouterr().err
    assert main(["explain", str(photos), data, "--set", *common, "--out", str(tmp_path / "d")]) == 2
    assert "one folder or set name" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
