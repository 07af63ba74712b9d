"""Out folders: a folder of the user's is refused without --overwrite, and even with it only a command's own
files are removed; one explain-set run at a time writes a folder, and a run whose folder was taken stops."""

from __future__ import annotations

import json
import os
import threading

import pytest
import torch
from scan_worker import pictures, small_model
from test_scan_data import write_fake_fashion

from convscope.attribution.dataset import CONFIG, explain_set, load_chunks, read_config
from convscope.attribution.dataset_summary import summarise
from convscope.cli import main
from convscope.data import TensorPictures
from convscope.scan import Scan, ScanResult, storage
from convscope.scan.lock import ScanBusy

pytestmark = pytest.mark.usefixtures("one_thread")


def contents(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def users_files(folder) -> dict[str, bytes]:
    """A folder as a user may have it: notes in `layers/` and `progress/`, a temporary file, an `index.pt`."""
    for name, data in {"layers/notes.txt": b"mine", "progress/plan.txt": b"mine too", ".draft.tmp": b"half",
                       "chunks/.keep.tmp": b"kept", "index.pt": b"my own index"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return contents(folder)


def _scan(folder, **options):
    return Scan(small_model(), ["relu1", "fc"], k=3).run(pictures(count=9), folder, batch_size=4, progress=False,
                                                         **options)


def test_scan_refuses_a_folder_of_the_users_files_and_overwrite_keeps_them(tmp_path) -> None:
    before = users_files(tmp_path)
    with pytest.raises(ValueError, match=r"holds files that `convscope scan` did not write \(\.draft\.tmp, "
                                         r"chunks/\.keep\.tmp, index\.pt and more\).*--overwrite"):
        _scan(tmp_path)
    assert contents(tmp_path) == before  # nothing written, nothing removed
    assert _scan(tmp_path, overwrite=True).count == 9
    after = contents(tmp_path)
    assert {name: after[name] for name in before if name != "index.pt"} == \
        {name: data for name, data in before.items() if name != "index.pt"}  # only the scan's own names replaced
    assert after["index.pt"] != before["index.pt"]
    with pytest.raises(ValueError, match=r"did not write \(layers/notes\.txt, progress/plan\.txt\)"):
        _scan(tmp_path)  # the folder is the scan's now, but its own sub-folders still hold the user's notes


def test_the_command_refuses_in_one_line_and_writes_nothing(tmp_path, capsys) -> None:
    write_fake_fashion(tmp_path / "fashion", test=5)
    work = tmp_path / "work"
    (work / "layers").mkdir(parents=True)
    (work / "layers" / "notes.txt").write_text("mine")
    argv = ["scan", f"{tmp_path / 'fashion'}:test", "--layers", "relu2", "--batch-size", "2", "--device", "cpu",
            "--out", str(work)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layers/notes.txt" in err and "--overwrite" in err
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["layers", "layers/notes.txt"]
    assert main([*argv, "--overwrite"]) == 0
    assert (work / "layers" / "notes.txt").read_text() == "mine" and (work / "layers" / "relu2.pt").is_file()


def test_a_scans_own_sub_folders_hold_only_its_files_and_cleanups_remove_only_those(tmp_path) -> None:
    _scan(tmp_path)
    (tmp_path / "layers" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"layers/notes\.txt"):
        _scan(tmp_path)
    (tmp_path / "layers" / "notes.txt").unlink()
    (tmp_path / "top_patches_relu1_0-3.png").write_bytes(b"a view of the scan")  # the views write beside it
    (tmp_path / ".mine.tmp").write_bytes(b"the user's")
    (tmp_path / "layers" / ".relu1.pt.4242.tmp").write_bytes(b"half written by the scan")
    rank = tmp_path / storage.PROGRESS / "rank0"  # as if the removal of progress/ had been cut short
    rank.mkdir(parents=True)
    (rank / "part_00000.pt").write_bytes(b"left over")
    assert _scan(tmp_path).count == 9
    assert not (tmp_path / "layers" / ".relu1.pt.4242.tmp").exists() and not (tmp_path / "progress").exists()
    assert (tmp_path / ".mine.tmp").is_file() and (tmp_path / "top_patches_relu1_0-3.png").is_file()
    (rank / "mine.txt").parent.mkdir(parents=True)
    (rank / "mine.txt").write_text("mine")
    Scan(small_model(), ["relu2"], k=3).run(pictures(count=9), tmp_path, batch_size=4, progress=False,
                                            overwrite=True)
    assert (rank / "mine.txt").read_text() == "mine" and (tmp_path / ".mine.tmp").is_file()
    assert sorted(p.name for p in (tmp_path / "layers").iterdir()) == ["relu2.pt"]


def test_explain_set_refuses_a_folder_of_the_users_files_and_overwrite_keeps_them(tmp_path) -> None:
    before = users_files(tmp_path)
    with pytest.raises(ValueError, match=r"`convscope explain-set` did not write \(\.draft\.tmp, chunks/\.keep"):
        explain_set(small_model(), pictures(), tmp_path, batch_size=8, progress=False)
    assert contents(tmp_path) == before
    explain_set(small_model(), pictures(), tmp_path, batch_size=8, progress=False, overwrite=True)
    after = contents(tmp_path)
    assert {name: after[name] for name in before} == before
    assert len(load_chunks(tmp_path)) == 3
    explain_set(small_model(), pictures(), tmp_path, "saliency", batch_size=8, progress=False, overwrite=True)
    assert {name: contents(tmp_path)[name] for name in before} == before  # a second overwrite keeps them too


class Pausing(TensorPictures):
    """The same pictures; reading picture ``at`` first calls ``pause`` (a run suspended in the middle)."""

    def __init__(self, source: TensorPictures, at: int, pause) -> None:
        super().__init__(source.items, source.labels(), source.class_names)
        self.at, self.pause = at, pause

    def picture(self, index: int) -> torch.Tensor:
        if index == self.at:
            self.pause()
        return super().picture(index)


def test_a_second_explain_set_run_on_a_folder_in_use_is_refused(tmp_path) -> None:
    paused, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pause() -> None:
        paused.set()
        go_on.wait(60)

    def first() -> None:
        try:
            explain_set(small_model(), Pausing(pictures(), 12, pause), tmp_path, batch_size=4, progress=False)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert paused.wait(60)
        with pytest.raises(ScanBusy, match=rf"being explained by another process \(pid {os.getpid()}.*explain\.lock"):
            explain_set(small_model(), pictures(), tmp_path, target=2, batch_size=4, progress=False, overwrite=True)
    finally:
        go_on.set()
        thread.join()
    assert not errors
    assert read_config(tmp_path)["target"] == "top" and not (tmp_path / "explain.lock").exists()
    model, pics = small_model(), pictures()
    top = model.net(model.preprocess(torch.stack([pics.picture(i) for i in range(len(pics))]))).argmax(1)
    assert torch.equal(torch.cat([chunk["classes"] for chunk in load_chunks(tmp_path)]), top)  # no class-2 maps


def test_a_run_whose_folder_was_taken_under_it_stops_instead_of_mixing(tmp_path) -> None:
    def taken() -> None:  # another run (its lock removed by hand) rewrote the settings with --target 2
        config = json.loads((tmp_path / CONFIG).read_text())
        (tmp_path / CONFIG).write_text(json.dumps({**config, "target": "2"}))

    with pytest.raises(ValueError, match=r"explain\.json changed while this run was writing \(target.*stops"):
        explain_set(small_model(), Pausing(pictures(), 12, taken), tmp_path, batch_size=4, progress=False)
    assert len(load_chunks(tmp_path)) == 3  # chunks 0–2 were written before; none after the change

    mixed = tmp_path / "mixed"
    explain_set(small_model(), pictures(), mixed, batch_size=4, progress=False)
    other = tmp_path / "other"
    explain_set(small_model(), pictures(), other, target=2, batch_size=4, progress=False)
    (mixed / "chunks" / "chunk_00003.pt").write_bytes((other / "chunks" / "chunk_00003.pt").read_bytes())
    with pytest.raises(ValueError, match=r"chunk_00003\.pt was written by a run with other settings"):
        summarise(mixed)
    with pytest.raises(ValueError, match=r"chunk_00003\.pt was written by a run with other settings"):
        explain_set(small_model(), pictures(), mixed, batch_size=4, progress=False)


def test_train_refuses_a_folder_that_holds_an_earlier_run_and_picks_a_free_default(tmp_path, capsys,
                                                                                   monkeypatch) -> None:
    write_fake_fashion(tmp_path / "data", train=8, test=4)
    train = ["train", str(tmp_path / "data"), "--epochs", "1", "--batch-size", "4", "--device", "cpu"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "epoch_02.pt").write_bytes(b"an earlier run's checkpoint")
    (run / "notes.txt").write_text("mine")
    before = contents(run)
    assert main([*train, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds an earlier training run's files (epoch_02.pt" in err
    assert "--overwrite" in err and contents(run) == before
    assert main([*train, "--out", str(run), "--overwrite"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["epoch_00.pt", "epoch_01.pt", "history.csv", "notes.txt"]
    monkeypatch.chdir(tmp_path)
    assert main(train) == 0 and main(train) == 0  # the default folder is never an earlier run's
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["fashion_cnn", "fashion_cnn_2"]
    assert "--weights runs/fashion_cnn_2/epoch_01.pt" in capsys.readouterr().out


def _photos(folder, count: int = 6):
    """``count`` small different PNG pictures in ``folder`` (a picture set of files)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(5)
    for n in range(count):
        pixels = (torch.rand(12, 12, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"p{n}.png")


def test_a_finished_scan_refuses_pictures_that_changed_and_accepts_a_touched_file(tmp_path, monkeypatch) -> None:
    from PIL import Image

    import convscope.data.folder as folder_module
    from convscope.data.opening import open_dataset

    _photos(tmp_path / "photos")
    scan = Scan(small_model(), ["relu1", "fc"], k=3)
    scan.run(open_dataset(tmp_path / "photos"), tmp_path / "scan", batch_size=4, progress=False)
    reads: list[str] = []
    load = folder_module.load_image
    monkeypatch.setattr(folder_module, "load_image", lambda path: reads.append(path) or load(path))
    result = scan.run(open_dataset(tmp_path / "photos"), tmp_path / "scan", batch_size=4, progress=False)
    assert reads == []  # unchanged files (sizes and times) are not read again
    result.top_patches("relu1", [0, 1], 3)
    reads.clear()

    path = tmp_path / "photos" / "p2.png"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same content: still the same scan
    scan.run(open_dataset(tmp_path / "photos"), tmp_path / "scan", batch_size=4, progress=False)
    assert [os.path.basename(p) for p in reads] == ["p2.png"]  # only the touched file is read, to compare

    pixels = torch.zeros(12, 12, 3, dtype=torch.uint8).numpy()
    Image.fromarray(pixels).save(path)  # another picture under the same name
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    with pytest.raises(ValueError, match=r"picture 2 \(p2\.png\) changed since it was scanned into .*--overwrite"):
        scan.run(open_dataset(tmp_path / "photos"), tmp_path / "scan", batch_size=4, progress=False)
    result = ScanResult.load(tmp_path / "scan")
    top = result.top("relu1")
    channel = next(c for c in range(top.images.shape[0]) if 2 in top.images[c].tolist())
    with pytest.raises(ValueError, match=r"picture 2 \(p2\.png\) changed since it was scanned"):
        result.top_patches("relu1", [channel], 3)
    assert scan.run(open_dataset(tmp_path / "photos"), tmp_path / "scan", batch_size=4, progress=False,
                    overwrite=True).count == 6  # --overwrite scans them as they are


def test_the_commands_refuse_a_scan_whose_pictures_changed_in_one_line(tmp_path, capsys) -> None:
    write_fake_fashion(tmp_path / "fashion", test=5)
    argv = ["scan", f"{tmp_path / 'fashion'}:test", "--layers", "relu2", "--batch-size", "2", "--device", "cpu",
            "--out", str(tmp_path / "scan")]
    assert main(argv) == 0
    images = tmp_path / "fashion" / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[16:16 + 5 * 784] = bytes(255 - b for b in data[16:16 + 5 * 784])  # every picture inverted
    images.write_bytes(bytes(data))
    capsys.readouterr()
    for command in (argv, ["top-patches", str(tmp_path / "scan"), "--channels", "0"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "changed since it was scanned" in err and "--overwrite" in err, err


def test_a_scan_whose_folder_was_taken_under_it_stops_instead_of_mixing(tmp_path) -> None:
    def taken() -> None:  # another scan (its lock removed by hand) rewrote the settings with other layers
        config = json.loads((tmp_path / storage.CONFIG).read_text())
        (tmp_path / storage.CONFIG).write_text(json.dumps({**config, "layers": ["relu2"]}))

    with pytest.raises(ValueError, match=r"scan\.json changed while this scan was writing \(layers.*stops"):
        Scan(small_model(), ["relu1", "fc"], k=3).run(Pausing(pictures(count=9), 6, taken), tmp_path,
                                                      batch_size=2, progress=False, checkpoint_every=0)
    assert json.loads((tmp_path / storage.CONFIG).read_text())["complete"] is False  # not finished as a mixture


def test_a_refusal_names_the_setting_that_differs_inside_a_group_of_settings() -> None:
    from convscope.scan.storage import first_difference

    there = {"model": "m", "settings": {"steps": 4, "precision": "bfloat16"}}
    now = {"model": "m", "settings": {"steps": 4}}
    assert first_difference(there, now, ["model", "settings"]).said("there", "now") == \
        'settings.precision: "bfloat16" there, absent now'
    assert first_difference(there, there, ["model", "settings"]) is None
    assert first_difference({"k": 1}, {"k": 2}, ["k"]).said("now", "in this scan") == "k: 1 now, 2 in this scan"
