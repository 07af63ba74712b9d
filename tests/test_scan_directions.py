"""Units against random directions (Szegedy et al. 2014, §3): top pictures read from the stored features,
the coherence scores checked by hand, dead units left out, and the command line."""

from __future__ import annotations

import pytest
import torch
from scan_worker import pictures, small_model

from convscope.cli import main
from convscope.data import has_fashion_mnist
from convscope.scan import Scan
from convscope.scan.directions import _purity, _similarity, direction_study


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    return Scan(small_model(), ["relu2", "fc"], k=4).run(pictures(), tmp_path_factory.mktemp("scan"),
                                                         batch_size=8, progress=False)


def test_purity_and_similarity_by_hand():
    labels = torch.tensor([0, 0, 1, 2])
    assert _purity(labels, torch.tensor([[0, 1, 2], [1, 2, 3]])).tolist() == pytest.approx([2 / 3, 1 / 3])
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # pairs (0,1) cos 1, (0,2) and (1,2) cos 0 → mean 1/3
    assert float(_similarity(features, torch.tensor([[0, 1, 2]]))[0]) == pytest.approx(1 / 3)


def test_tops_come_from_the_stored_features_and_dead_units_are_left_out(scanned):
    study = direction_study(scanned, "relu2", count=3, k=4, seed=0)
    features = scanned.features("relu2")
    assert 4 not in study.units.tolist() and study.constant_units >= 1  # channel 4 never fires
    for row, unit in enumerate(study.units.tolist()):
        assert set(study.unit_top[row].tolist()) == set(features[:, unit].topk(4).indices.tolist())
    projections = features @ study.directions.T
    assert set(study.direction_top[0].tolist()) == set(projections[:, 0].topk(4).indices.tolist())
    torch.testing.assert_close(study.directions.norm(dim=1), torch.ones(len(study.directions)))
    again = direction_study(scanned, "relu2", count=3, k=4, seed=0)
    assert torch.equal(again.directions, study.directions) and again.shown_units == study.shown_units


def test_pca_directions_are_the_leading_components(scanned):
    study = direction_study(scanned, "fc", kind="pca", count=2, k=3)
    features = scanned.features("fc").float()
    centred = features - features.mean(0)
    first = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    assert float((study.directions[0] @ first).abs()) == pytest.approx(1.0, abs=1e-5)


def test_bad_settings_are_refused(scanned):
    with pytest.raises(ValueError, match="unknown kind of direction"):
        direction_study(scanned, "fc", kind="ica")
    with pytest.raises(ValueError, match="k must be between 2"):
        direction_study(scanned, "fc", k=1000)


@pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed")
def test_the_command_draws_units_beside_directions(tmp_path, capsys):
    scan = tmp_path / "scan"
    assert main(["scan", "fashion-mnist:test", "--limit", "64", "--layers", "relu7", "--out", str(scan), "-q"]) == 0
    code = main(["top-patches", str(scan), "--directions", "random", "--count", "2", "-k", "3", "-q"])
    assert code == 0 and len(list(scan.glob("directions_relu7_random_*.png"))) == 1
    out = capsys.readouterr().out
    assert "label purity of the top 3" in out and "random directions" in out and "at relu7" in out
    assert main(["top-patches", str(scan), "--directions", "random", "--channels", "1"]) == 2
    assert "leave out --channels" in capsys.readouterr().err
