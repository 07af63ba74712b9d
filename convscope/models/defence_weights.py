"""The shipped defence models: small Fashion-MNIST CNNs trained with each defence of the lecture, three seeds each.

``convscope defences fashion_defences`` measures them offline in seconds (the gallery does too). Each was made by

    convscope train --train-pictures 3000 --test-pictures 1000 --epochs 3 --attack-steps 5 --seed S \\
        --channels 16 32 64 --fc 0 [--defence noise --noise 0.2 | --defence adversarial --epsilon 0.1 |
        --defence representation --epsilon 0.1 --defence-layers relu2 relu3]

for S = 0, 1, 2 (their last epoch, with its settings). They are a fifth of the shipped ``fashion_cnn``'s width and
saw 3 000 pictures, so their accuracy (about 70–74 %) is lower; what they show is how the defences compare.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_DEFENCES = "fashion_defences"
DEFENCES = ("plain", "noise", "adversarial", "representation")
SEEDS = (0, 1, 2)
FOLDER = Path(__file__).parent / "weights" / "defences"


def shipped_defence_weights() -> list[Path]:
    """The twelve weights files, defence by defence and seed by seed."""
    files = [FOLDER / f"{defence}_seed{seed}.pt" for defence in DEFENCES for seed in SEEDS]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"the shipped defence weights are incomplete ({', '.join(missing)} missing from {FOLDER}); "
                         "reinstall convscope, or train your own runs with `convscope train --defence`")
    return files
