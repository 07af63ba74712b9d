"""Views on a scan: patches mapped back to the original pictures, exact neighbours, grid assignment,
embeddings against scikit-learn, dead filters."""

from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch
from scan_worker import pictures, small_model

from convscope.models import Preprocess
from convscope.render.picture import Picture
from convscope.scan import Scan
from convscope.scan.neighbors import nearest
from convscope.scan.patches import cut_patch, original_box
from convscope.scan.tsne_grid import snap_to_grid


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    return Scan(small_model(), ["relu1", "relu2", "fc"], k=4).run(pictures(), tmp_path_factory.mktemp("scan"),
                                                                    batch_size=8, progress=False)


def test_original_box_literal_and_against_the_preprocessing() -> None:
    preprocess = Preprocess(resize=256, crop=224)
    # 512×384: short side → 256, so 341×256; the centre crop starts at row 58, column 16
    box = original_box((0, 0, 224, 224), (512, 384), preprocess)
    assert box == pytest.approx((58 * 512 / 341, 16 * 384 / 256, 282 * 512 / 341, 240 * 384 / 256))
    picture = torch.zeros(3, 512, 384)
    picture[:, 300:304, 100:104] = 1.0  # a bright square; where does the model see it?
    fitted = preprocess.fit(picture)[0, 0]
    y, x = divmod(int(fitted.argmax()), fitted.shape[1])
    top, left, bottom, right = original_box((y, x, y + 1, x + 1), (512, 384), preprocess)
    assert top <= 303 and bottom >= 300 and left <= 103 and right >= 100


def test_cut_patch_is_the_region_and_padding_is_the_mean() -> None:
    picture = torch.rand(3, 12, 12)
    identity = Preprocess(resize=None, crop=12, mean=(0.1, 0.2, 0.3), std=(1, 1, 1))
    assert torch.equal(cut_patch(picture, torch.tensor([2, 3, 7, 8]), identity, 5), picture[:, 2:7, 3:8])
    outside = cut_patch(picture, torch.tensor([-2, -2, 3, 3]), identity, 5)
    assert torch.equal(outside[:, 2:, 2:], picture[:, :3, :3])
    assert torch.allclose(outside[:, 0, 0], torch.tensor([0.1, 0.2, 0.3]))


def test_top_patches_are_cut_at_the_strongest_position(scanned) -> None:
    view = scanned.top_patches("relu2", channels=[0, 2], k=3)
    field = scanned.receptive_field("relu2")
    assert field.size() == (8, 8) and field.stride == (2, 2)  # conv 3 → pool 2 → conv 3
    top = scanned.top("relu2")
    for row, channel in enumerate([0, 2]):
        for j in range(3):
            image, flat = int(top.images[channel, j]), int(top.positions[channel, j])
            y, x = divmod(flat, 3)
            box = field.boxes(torch.tensor([channel]), torch.tensor([y]), torch.tensor([x]))[0]
            assert torch.equal(view.boxes[row, j], box)
            expected = cut_patch(scanned.pictures.picture(image), box, scanned.preprocess, view.patches.shape[-1])
            assert torch.equal(view.patches[row, j], expected)
    assert isinstance(view.picture(), Picture) and isinstance(view.picture(context=True), Picture)
    with pytest.raises(ValueError, match="channels 0 … 4"):
        scanned.top_patches("relu2", channels=[5])
    with pytest.raises(ValueError, match="top 4"):
        scanned.top_patches("relu2", k=5)


def test_nearest_is_exact_with_ties_exclusion_and_chunks() -> None:
    generator = torch.Generator().manual_seed(0)
    database = torch.randn(50, 6, generator=generator)
    database[17] = database[3]  # a tie
    queries = database[[3, 10]] + 0.01
    indices, distances = nearest(queries, database, 5, chunk=7)
    brute = torch.cdist(queries.double(), database.double())
    order = brute.argsort(dim=1, stable=True)[:, :5]
    assert torch.equal(indices, order) and indices[0, :2].tolist() == [3, 17]
    torch.testing.assert_close(distances.double(), brute.gather(1, order), rtol=1e-5, atol=1e-5)
    own, _ = nearest(database[[3]], database, 3, exclude=torch.tensor([3]))
    assert own[0].tolist()[0] == 17 and 3 not in own[0].tolist()
    cosine, _ = nearest(queries, database, 4, metric="cosine", chunk=11)
    similarity = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(database, dim=1).T
    assert torch.equal(cosine, (1 - similarity).argsort(dim=1, stable=True)[:, :4])
    with pytest.raises(ValueError, match="between 1 and 50"):
        nearest(queries, database, 51)
    with pytest.raises(ValueError, match="metric"):
        nearest(queries, database, 3, metric="manhattan")


def test_a_picture_query_finds_itself_then_what_its_index_query_finds(scanned) -> None:
    model = small_model()
    by_index = scanned.neighbors([9], "relu2", k=4)
    by_picture = scanned.neighbors([scanned.pictures.picture(9)], "relu2", k=5, model=model)
    assert by_picture.feature_indices[0, 0] == 9 and by_picture.pixel_indices[0, 0] == 9
    assert float(by_picture.pixel_distances[0, 0]) == 0.0
    assert torch.equal(by_picture.feature_indices[0, 1:], by_index.feature_indices[0])
    assert torch.equal(by_picture.pixel_indices[0, 1:], by_index.pixel_indices[0])
    pixels = torch.stack([scanned.preprocess.fit(scanned.pictures.picture(i))[0] for i in range(23)]).flatten(1)
    brute = torch.cdist(pixels[9:10], pixels)
    brute[0, 9] = torch.inf
    assert torch.equal(by_index.pixel_indices[0], brute.argsort(dim=1, stable=True)[0, :4])
    assert isinstance(by_index.picture(), Picture)
    with pytest.raises(ValueError, match="picture index"):
        scanned.neighbors([23])


def test_snap_to_grid_is_the_optimal_assignment() -> None:
    rows, columns = 2, 3
    centres = torch.tensor([[(c + 0.5) / columns, 1 - (r + 0.5) / rows] for r in range(rows) for c in range(columns)])
    shuffled = torch.tensor([4, 0, 5, 2, 1, 3])
    assert torch.equal(snap_to_grid(centres[shuffled] * 10 - 3, rows, columns), shuffled)
    generator = torch.Generator().manual_seed(1)
    points = torch.rand(6, 2, generator=generator)
    cells = snap_to_grid(points, rows, columns)
    low, high = points.amin(0), points.amax(0)
    unit = (points - low) / (high - low)

    def cost(assignment) -> float:
        return float(((unit - centres[list(assignment)]) ** 2).sum())

    best = min(itertools.permutations(range(6)), key=cost)
    assert cost(cells.tolist()) == pytest.approx(cost(best))
    with pytest.raises(ValueError, match="do not fit"):
        snap_to_grid(torch.rand(7, 2), 2, 3)


def test_pca_matches_scikit_learn_and_tsne_keeps_clusters(scanned) -> None:
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    embedding = scanned.embed("relu2", method="pca")
    reference = PCA(2).fit_transform(scanned.features("relu2").double().numpy())
    ours = embedding.points.double()
    for component in range(2):
        sign = torch.sign((ours[:, component] * torch.from_numpy(reference[:, component])).sum())
        torch.testing.assert_close(ours[:, component] * sign, torch.from_numpy(reference[:, component]),
                                   rtol=1e-4, atol=1e-4)
    assert "variance" in embedding.note and isinstance(embedding.scatter(), Picture)
    assert isinstance(embedding.grid_picture(side=4, tile_size=10), Picture)

    from convscope.scan.embedding import embed_features

    generator = torch.Generator().manual_seed(0)
    clusters = torch.cat([torch.randn(40, 10, generator=generator) + 8 * torch.eye(10)[i] for i in range(3)])
    points, _ = embed_features(clusters, method="tsne", seed=0, jobs=1)
    assert points.shape == (120, 2) and torch.isfinite(points).all()
    assert trustworthiness(clusters.numpy(), points.numpy(), n_neighbors=5) > 0.9
    with pytest.raises(ValueError, match="embedding"):
        embed_features(clusters, method="isomap")


@pytest.mark.skipif(importlib.util.find_spec("umap") is not None, reason="umap-learn is installed")
def test_umap_without_the_extra_says_how_to_get_it(scanned) -> None:
    with pytest.raises(ValueError, match="umap-learn"):
        scanned.embed("relu2", method="umap")


def test_dead_filters_view(scanned) -> None:
    view = scanned.dead_filters("relu2")
    assert view.channels == [4] and "1 of 5 channels dead" in view.lines()[0]
    assert scanned.dead_filters("relu2", max_active=0.99).channels == [c for c in range(5)
                                                                        if scanned.statistics("relu2")
                                                                        .active_images[c] <= 0.99]
    assert isinstance(view.picture(), Picture)
    with pytest.raises(ValueError, match="max_active"):
        scanned.dead_filters("relu2", max_active=1.5)
