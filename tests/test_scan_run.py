"""The streaming scan: agreement with a direct computation, batch-size independence, resuming, the model
left as found, and clear errors."""

from __future__ import annotations

import pytest
import torch
from scan_worker import LAYERS, assert_same_scan, pictures, small_model
from torch import nn

from convscope.data import TensorPictures
from convscope.models import Model, Preprocess
from convscope.scan import Scan, ScanResult
from convscope.scan.top import TopActivations


def direct(model: Model, data: TensorPictures, layer: str) -> torch.Tensor:
    from convscope.hooks import capture

    inputs = model.prepare([data.picture(i) for i in range(len(data))])
    with torch.no_grad(), capture(model.net, [layer], detach=True) as store:
        model.net(inputs)
    return store.activation(layer)


def test_scan_agrees_with_a_direct_computation(tmp_path) -> None:
    model, data = small_model(), pictures()
    result = Scan(model, LAYERS, k=4).run(data, tmp_path, batch_size=5, progress=False)
    for layer in LAYERS:
        maps = direct(model, data, layer)
        maps = maps[:, :, None] if maps.dim() == 2 else maps.flatten(2)
        torch.testing.assert_close(result.features(layer), maps.mean(2))
        best, where = maps.max(2)
        order = best.T.argsort(dim=1, descending=True, stable=True)[:, :4]  # ties: lower index first
        top = result.top(layer)
        assert torch.equal(top.images, order)
        torch.testing.assert_close(top.values, best.T.gather(1, order))
        assert torch.equal(top.positions, where.T.gather(1, order))
        stats = result.statistics(layer)
        values = maps.double().transpose(0, 1).flatten(1)
        torch.testing.assert_close(stats.mean, values.mean(1))
        torch.testing.assert_close(stats.std, values.std(1, correction=0))
        torch.testing.assert_close(stats.active_images, (best > 0).double().mean(0))
    assert torch.equal(result.labels, torch.arange(23) % 3)
    assert result.dead_filters("relu2").channels == [4]
    assert result.shape("relu2") == (5, 3, 3) and result.shape("fc") == (3,)


def test_identical_pictures_tie_by_index_and_every_batch_size_agrees(tmp_path) -> None:
    model, data = small_model(), pictures()
    one = Scan(model, LAYERS, k=6).run(data, tmp_path / "one", batch_size=1, progress=False)
    all_at_once = Scan(model, LAYERS, k=6).run(data, tmp_path / "all", batch_size=23, progress=False)
    for layer in LAYERS:
        assert torch.equal(one.top(layer).images, all_at_once.top(layer).images)
        torch.testing.assert_close(one.features(layer), all_at_once.features(layer))
        images = one.top(layer).images.tolist()
        for row in images:  # pictures 5 and 6 are equal: 6 never comes before 5
            assert not (6 in row and 5 in row and row.index(6) < row.index(5))


def test_top_activations_merge_in_any_order() -> None:
    a = TopActivations(torch.tensor([[3.0, 1.0]]), torch.tensor([[7, 2]]), torch.tensor([[0, 1]]))
    b = TopActivations(torch.tensor([[3.0, 2.0]]), torch.tensor([[4, 9]]), torch.tensor([[5, 6]]))
    ab, ba = a.merged(b), b.merged(a)
    assert ab.values.tolist() == [[3.0, 3.0]] and ab.images.tolist() == [[4, 7]] and ab.positions.tolist() == [[5, 0]]
    assert torch.equal(ab.images, ba.images) and torch.equal(ab.positions, ba.positions)
    empty = TopActivations.empty(1, 3)
    assert empty.merged(a).images.tolist() == [[7, 2, -1]] and empty.merged(a).filled().k == 2


def test_model_is_left_as_found(tmp_path) -> None:
    model, data = small_model(), pictures()
    model.net.train()
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    Scan(model, ["relu1", "relu2"]).run(data, tmp_path, batch_size=8, progress=False)
    assert model.net.training and model.net.relu1.inplace
    assert all(not m._forward_hooks for m in model.net.modules())
    assert all(p.requires_grad for p in model.net.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.net.state_dict().items())


class Failing(TensorPictures):
    """Raises when picture ``fail_at`` is read (an interruption); counts every picture read."""

    def __init__(self, data: TensorPictures, fail_at: int | None) -> None:
        super().__init__(data.items, data.labels(), data.class_names)
        self.fail_at, self.reads = fail_at, []

    def picture(self, index: int) -> torch.Tensor:
        if index == self.fail_at:
            raise KeyboardInterrupt
        self.reads.append(index)
        return super().picture(index)


def test_an_interrupted_scan_resumes_to_exactly_the_uninterrupted_result(tmp_path) -> None:
    model, data = small_model(), pictures()
    whole = Scan(model, LAYERS, k=4).run(data, tmp_path / "whole", batch_size=4, progress=False)
    broken = Failing(data, fail_at=13)
    with pytest.raises(KeyboardInterrupt):
        Scan(model, LAYERS, k=4).run(broken, tmp_path / "resumed", batch_size=4, progress=False,
                                     checkpoint_every=0)
    assert not ScanResultIsComplete(tmp_path / "resumed")
    again = Failing(data, fail_at=None)
    resumed = Scan(model, LAYERS, k=4).run(again, tmp_path / "resumed", batch_size=4, progress=False)
    # the saved batches 0–2 (pictures 0–11) are read once to check that they did not change, not scanned;
    # picture 0 goes through the layers once before anything is written
    assert sorted(again.reads) == [0, *range(23)]
    assert_same_scan(resumed, whole)


def ScanResultIsComplete(folder) -> bool:  # noqa: N802
    try:
        ScanResult.load(folder)
    except ValueError:
        return False
    return True


def test_a_finished_scan_is_reused_and_a_different_one_refused(tmp_path) -> None:
    model, data = small_model(), pictures()
    Scan(model, ["relu1"]).run(data, tmp_path, batch_size=8, progress=False)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pt")}
    counting = Failing(data, fail_at=None)
    Scan(model, ["relu1"]).run(counting, tmp_path, batch_size=8, progress=False)
    assert sorted(counting.reads) == list(range(len(data)))  # read once, to see they are unchanged; not rescanned
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pt")} == written
    with pytest.raises(ValueError, match="layers"):
        Scan(model, ["relu2"]).run(data, tmp_path, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="model"):
        Scan(small_model(seed=3), ["relu1"]).run(data, tmp_path, batch_size=8, progress=False)
    redone = Scan(model, ["relu2"]).run(data, tmp_path, batch_size=8, progress=False, overwrite=True)
    assert redone.layers == ["relu2"]


class SharedRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.relu(self.conv(x)) - 1)


def test_clear_errors(tmp_path) -> None:
    model, data = small_model(), pictures()
    with pytest.raises(ValueError, match="relu1"):
        Scan(model, ["relu"])
    with pytest.raises(ValueError, match="pooling"):
        Scan(model, ["relu1"], pooling="median")
    with pytest.raises(ValueError, match="positive int"):
        Scan(model, ["relu1"], k=0)
    with pytest.raises(TypeError, match="PictureSet"):
        Scan(model, ["relu1"]).run(torch.rand(4, 3, 10, 10), tmp_path)
    shared = Model(SharedRelu(), preprocess=Preprocess(resize=None, crop=10, mean=(0,) * 3, std=(1,) * 3))
    with pytest.raises(ValueError, match="more than once"):
        Scan(shared, ["relu"]).run(data, tmp_path / "shared", progress=False)
    assert all(not m._forward_hooks for m in shared.net.modules())
    assert not (tmp_path / "shared").exists()  # a scan that cannot run leaves nothing behind
    with pytest.raises(ValueError, match="holds no scan"):
        ScanResult.load(tmp_path / "nothing")


def test_max_and_flatten_pooling(tmp_path) -> None:
    model, data = small_model(), pictures(count=8)
    maps = direct(model, data, "relu2").flatten(2)
    top = Scan(model, ["relu2"], pooling="max").run(data, tmp_path / "max", batch_size=4, progress=False)
    flat = Scan(model, ["relu2"], pooling="flatten").run(data, tmp_path / "flat", batch_size=4, progress=False)
    torch.testing.assert_close(top.features("relu2"), maps.amax(2))
    torch.testing.assert_close(flat.features("relu2"), maps.flatten(1))


def test_order_key_sorts_by_value_then_lower_index() -> None:
    from convscope.scan.top import order_key

    values = torch.tensor([[0.0, -0.0, 1.5, -2.0, 1.5, -torch.inf, 3e-40, -3e-40, 0.0, 1e30]])
    images = torch.tensor([[4, 2, 9, 1, 3, -1, 7, 8, 0, 5]])
    order = order_key(values, images).argsort(dim=1, descending=True)
    # by value descending, equal values (0.0 == -0.0, 1.5) by image index ascending, the empty slot last
    assert images.gather(1, order).tolist() == [[5, 3, 9, 7, 0, 2, 4, 8, 1, -1]]


def test_a_corrupt_picture_is_named_also_from_a_loader_process(tmp_path) -> None:
    from PIL import Image

    from convscope.data import ImageFolder

    (tmp_path / "pictures").mkdir()
    for n in range(3):
        Image.new("RGB", (10, 10), (n * 80, 0, 0)).save(tmp_path / "pictures" / f"{n}.png")
    (tmp_path / "pictures" / "3.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"3\.png") as caught:
        Scan(small_model(), ["relu1"]).run(ImageFolder(tmp_path / "pictures"), tmp_path / "scan", batch_size=2,
                                           workers=1, progress=False)
    assert "\n" not in str(caught.value)
