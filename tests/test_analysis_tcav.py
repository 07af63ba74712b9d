"""TCAV: scores equal Captum's TCAV given the same CAVs, the t-test is scipy's, bad concept sets are refused in one
line with nothing written."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.analysis.tcav import class_gradients, fit_cav, picture_activations, tcav, tcav_score
from convscope.data.concept_textures import CONCEPTS, concept_pictures
from convscope.models import Model, Preprocess

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 3))
    return Model(net.eval(), preprocess=Preprocess(resize=32, crop=32, mean=(0.5,) * 3, std=(0.25,) * 3),
                 class_names=["a", "b", "c"])


def sets(seed: int = 0) -> tuple[dict, list, list]:
    generator = torch.Generator().manual_seed(seed)
    concepts = {name: concept_pictures(name, 10, size=32, seed=seed) for name in ("stripes", "red")}
    randoms = [[torch.rand(3, 32, 32, generator=generator) for _ in range(10)] for _ in range(11)]
    pictures = [torch.rand(3, 32, 32, generator=generator) for _ in range(12)]
    return concepts, randoms, pictures


def test_tcav_scores_equal_captums_given_the_same_classifier(model, tmp_path):
    pytest.importorskip("captum")
    from captum.concept import TCAV, Concept
    from captum.concept._utils.classifier import Classifier

    class SameCAV(Classifier):
        """Captum's classifier interface around convscope's CAV fit (same data order, same seed)."""

        def __init__(self) -> None:
            self.seed = 0

        def train_and_eval(self, dataloader, **kwargs):
            x, y = zip(*dataloader, strict=True)
            x, y = torch.cat(x), torch.cat(y)
            self.ids = sorted(set(y.tolist()))
            cav = fit_cav(x[y == self.ids[0]], x[y == self.ids[1]], seed=self.seed)
            self.vector = cav.vector
            return {"accs": cav.accuracy}

        def weights(self):
            return torch.stack([self.vector, -self.vector])

        def classes(self):
            return self.ids

    concepts, randoms, pictures = sets()
    ours = tcav(model, concepts, randoms, pictures, "3", [1, 2])
    inputs = model.preprocess(pictures)

    def concept(i: int, name: str, members: list) -> Concept:
        data = torch.utils.data.DataLoader(model.preprocess(members), batch_size=64)
        return Concept(i, name, data)

    stripes = concept(0, "stripes", concepts["stripes"])
    pools = [concept(10 + i, f"random{i}", pool) for i, pool in enumerate(randoms)]
    captum = TCAV(model.net, ["3"], classifier=SameCAV(), save_path=str(tmp_path / "cav"))
    for k, target in enumerate([1]):  # class 2's scores take the same path
        for run in range(10):
            captum.classifier.seed = run
            captum.cavs.clear() if hasattr(captum, "cavs") else None
            result = captum.interpret(inputs, [[stripes, pools[run + 1]]], target=target, processes=1)
            key = f"0-{11 + run}"
            assert float(result[key]["3"]["sign_count"][0]) == pytest.approx(float(ours.scores[0, k, run]))
    from scipy.stats import ttest_ind

    assert float(ours.p_values[0, 0]) == pytest.approx(ttest_ind(ours.scores[0, 0].numpy(),
                                                                 ours.random_scores[0].numpy()).pvalue)


def test_the_classifiers_fitted_side_by_side_are_those_fitted_one_by_one(model):
    # tcav fits its CAVs in threads: each run's random-versus-random and concept CAV must be the one fitted alone
    # with that run's seed, and scikit-learn's convergence warnings stay silent (filters are global to threads)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    concepts, randoms, pictures = sets(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        found = tcav(model, concepts, randoms, pictures, "3", [1, 2], seed=5)
    gradients = class_gradients(model, pictures, "3", [1, 2])
    pools = [picture_activations(model, pool, "3") for pool in randoms]
    red = picture_activations(model, concepts["red"], "3")
    for run in (0, 4, 9):
        alone = fit_cav(pools[0], pools[run + 1], seed=5 + run)
        assert torch.equal(found.random_scores[:, run], tcav_score(gradients, alone.vector))
        alone = fit_cav(red, pools[run + 1], seed=5 + run)
        assert torch.equal(found.scores[1, :, run], tcav_score(gradients, alone.vector))
        assert found.accuracy[1, run] == alone.accuracy


def test_directional_derivatives_are_the_layer_gradient_along_the_cav(model):
    pictures = [torch.rand(3, 32, 32) for _ in range(5)]
    grads = class_gradients(model, pictures, "3", [0])
    acts = picture_activations(model, pictures, "3")
    cav = torch.randn(acts.shape[1])
    step = 1e-3
    with torch.no_grad():
        head = model.net[4:]
        shape = (len(pictures), 8, 16, 16)
        moved = head((acts + step * cav).view(shape))[:, 0] - head((acts - step * cav).view(shape))[:, 0]
    assert torch.equal(tcav_score(grads, cav)[0], ((moved / (2 * step)) > 0).float().mean())


def test_a_cav_points_towards_its_concept():
    concept = torch.randn(40, 5) + torch.tensor([3.0, 0, 0, 0, 0])
    random = torch.randn(40, 5)
    cav = fit_cav(concept, random)
    assert cav.vector[0] > 0 and cav.vector[0] == cav.vector.abs().max() and cav.accuracy > 0.9


def test_bad_concept_sets_are_refused(model):
    concepts, randoms, pictures = sets()
    with pytest.raises(ValueError, match="holds 3 pictures; TCAV needs at least 8"):
        tcav(model, {"stripes": concepts["stripes"][:3]}, randoms, pictures, "3", [0])
    with pytest.raises(ValueError, match="at least 11 random sets"):
        tcav(model, concepts, randoms[:5], pictures, "3", [0])
    with pytest.raises(ValueError, match="random set 4 is made of concept 'red'"):
        tcav(model, concepts, [*randoms[:4], concepts["red"], *randoms[5:]], pictures, "3", [0])


def test_built_in_concepts_are_repeatable_and_distinct():
    assert set(CONCEPTS) >= {"stripes", "dots", "chequered", "zigzag", "red"}
    first, again = concept_pictures("zigzag", 3, size=24), concept_pictures("zigzag", 3, size=24)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])
    with pytest.raises(ValueError, match="unknown built-in concept 'strips'"):
        concept_pictures("strips")


def test_tcav_command_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys):
    from convscope.cli import main
    from convscope.render.picture import Picture

    empty, tiny = tmp_path / "empty", tmp_path / "tiny"
    empty.mkdir(), tiny.mkdir()
    for i in range(2):
        Picture(torch.rand(3, 16, 16)).save(tiny / f"{i}.png")
    out = tmp_path / "out"
    for args, words in ((["--concepts", str(empty)], "holds no image files"),
                        (["--concepts", str(tiny)], "tiny holds 2 pictures; TCAV needs at least 8"),
                        (["--concepts", "builtin:strips"], "unknown built-in concept"),
                        (["--concepts", "builtin:stripes", "--runs", "3"], "between 10"),
                        (["--concepts", "builtin:stripes", "--random", str(tiny)], "holds 2 pictures; drawing")):
        code = main(["tcav", *args, "--layer", "blocks.4", "--targets", "zebra", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
