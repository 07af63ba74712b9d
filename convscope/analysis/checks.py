"""``convscope check``: every check of the explanations, on one model and a photo pool, as tables and figures."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from convscope.analysis.explainers import method_names
from convscope.analysis.faithfulness import faithfulness_study
from convscope.analysis.label_randomisation import fashion_label_randomisation
from convscope.analysis.localisation import occlusion_study, pointing_study
from convscope.analysis.pasted import pasted_objects
from convscope.analysis.sanity import sanity_checks
from convscope.images import load_sample
from convscope.logs import get_logger
from convscope.models.model import Model

CHECK_PHOTOS = ("chelsea", "coffee", "flower", "china", "rocket", "astronaut")
# ``convscope check``'s own default, sized to finish in about three minutes on a busy 2-core CPU: the methods
# that cost one or two passes (the gradient family, its guided variant, the CAMs), every third stage of the
# cascade, 10 deletion/insertion steps, one pasted picture per object and texture, a coarser occluder stride.
# ``convscope check --full`` (and :func:`run_checks`' own defaults) run the whole study.
DEMO_CHECK: dict[str, Any] = {"methods": ("saliency", "guided_backprop", "grad_cam", "grad_cam_plus_plus"),
                              "cascade_every": 3, "steps": 10, "pasted_per_pair": 1, "occlusion_stride": 32}
announce = get_logger(__name__).info  # what starts now (hidden by --quiet); the results go to ``log``


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_checks(model: Model, out: str | Path, *, methods: Sequence[str] | None = None,
               photos: Sequence[str] = CHECK_PHOTOS, sanity_photos: int = 2, steps: int = 25,
               options: Mapping[str, Mapping[str, Any]] | None = None, label_randomisation: bool = True,
               cascade_every: int = 1, pasted_per_pair: int = 2, occlusion_stride: int | None = None,
               log: Callable[[str], None] = print, progress: bool | None = None) -> dict[str, Any]:
    """Cascading randomisation, data randomisation (on the Fashion-MNIST pair, whatever ``model`` is),
    deletion/insertion, pointing game and the occlusion study; files go to ``out``.

    ``cascade_every``: explain after every n-th stage of the cascade (and the last); ``pasted_per_pair``: pictures
    per object and texture in the pointing game; ``occlusion_stride``: the occlusion study's stride (default 1/14
    of the side). ``log`` receives the results; ``progress`` shows a bar in each long study (None: in terminals
    and notebooks). :data:`DEMO_CHECK` holds the lighter settings of ``convscope check``.
    """
    out = Path(out)
    names = method_names(methods)
    inputs = model.prepare([load_sample(p) for p in photos])
    summary: dict[str, Any] = {"model": model.name, "methods": names, "photos": list(photos),
                               "settings": {"sanity_photos": sanity_photos, "cascade_every": cascade_every,
                                            "steps": steps, "pasted_per_pair": pasted_per_pair,
                                            "occlusion_stride": occlusion_stride}}

    began = time.perf_counter()
    announce(f"[1/4] cascading randomisation: {len(names)} methods on {sanity_photos} photos …")
    sanity = sanity_checks(model, inputs[:sanity_photos], names, options=options, evaluate_every=cascade_every,
                           progress=progress)
    write_csv(out / "sanity_cascading.csv", sanity.rows())
    sanity.picture().save(out / "sanity_cascading.png")
    summary["sanity"] = sanity.summary()
    log("\n".join(["Cascading randomisation (similarity to the original map):", *sanity.summary()]))
    log(f"  ({time.perf_counter() - began:.0f} s)")

    if label_randomisation:
        began = time.perf_counter()
        announce("[2/4] data randomisation on the Fashion-MNIST pair …")
        try:
            labels = fashion_label_randomisation(names, options=options, device=model.device)
        except ValueError as error:  # the Fashion-MNIST files or the shipped pair are missing
            log(f"Data randomisation skipped: {error}")
        else:
            write_csv(out / "sanity_data_randomisation.csv", labels.rows())
            labels.picture().save(out / "sanity_data_randomisation.png")
            summary["data_randomisation"] = labels.summary()
            log("\n".join(["Data randomisation, Fashion-MNIST CNN trained on true vs permuted labels "
                           "(similarity of the two maps):", *labels.summary()]))
            log(f"  ({time.perf_counter() - began:.0f} s)")

    began = time.perf_counter()
    announce(f"[3/4] deletion and insertion: {len(names)} methods on {len(photos)} photos, {steps} steps …")
    faithful = faithfulness_study(model, inputs, names, options=options, steps=steps, progress=progress)
    write_csv(out / "faithfulness.csv", faithful.rows())
    faithful.picture().save(out / "faithfulness.png")
    summary["faithfulness"] = faithful.rows()
    log("Deletion / insertion areas (lower / higher is better):")
    for row in faithful.rows():
        log(f"  {row['method']:28} deletion {row['deletion_auc']:.3f}   insertion {row['insertion_auc']:.3f}")
    log(f"  ({time.perf_counter() - began:.0f} s)")

    began = time.perf_counter()
    announce("[4/4] pointing game and occlusion study …")
    pasted = pasted_objects(size=model.preprocess.input_size[0], per_pair=pasted_per_pair)
    pointing = pointing_study(model, pasted, names, options=options, progress=progress)
    write_csv(out / "pointing_game.csv", pointing.rows())
    summary["pointing_game"] = pointing.rows()
    occluded = occlusion_study(model, pasted, stride=occlusion_stride)
    summary["occlusion_study"] = occluded.row()
    log(f"Pointing game on {len(pasted.boxes)} photos pasted on textures (chance {pointing.chance:.2f}):")
    for row in pointing.rows():
        log(f"  {row['method']:28} {row['pointing_accuracy']:.2f}")
    row = occluded.row()
    log(f"Occlusion study: lowest probability with the occluder on the object in {row['minimum_on_object']:.0%} "
        f"of pictures (chance {row['chance']:.0%}); mean drop on the object {row['mean_drop_on_object']:.3f}, "
        f"off it {row['mean_drop_off_object']:.3f}")
    log(f"  ({time.perf_counter() - began:.0f} s)")
    (out / "checks.json").write_text(json.dumps(summary, indent=1))
    return summary
