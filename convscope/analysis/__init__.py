"""Studies that use the visualisations to understand a network, and checks of the explanations themselves."""

from convscope.analysis.ablation import ABLATION_VARIANTS, ablation_study
from convscope.analysis.checks import run_checks
from convscope.analysis.evolution import checkpoint_files, feature_evolution
from convscope.analysis.faithfulness import deletion_insertion, faithfulness_study, pointing_game
from convscope.analysis.generalisation import generalisation_study, random_weights
from convscope.analysis.invariance import invariance_curves
from convscope.analysis.label_randomisation import data_randomisation, fashion_label_randomisation
from convscope.analysis.localisation import occlusion_study, pointing_study
from convscope.analysis.pasted import pasted_objects
from convscope.analysis.probes import linear_probes, split_pictures
from convscope.analysis.randomisation import cascading_randomisation
from convscope.analysis.robustness import accuracy_under_attack, gradient_comparison, robustness_curves
from convscope.analysis.sanity import sanity_checks
from convscope.analysis.similarity import spearman, ssim

__all__ = ["ABLATION_VARIANTS", "ablation_study", "accuracy_under_attack", "cascading_randomisation",
           "checkpoint_files", "data_randomisation", "deletion_insertion", "faithfulness_study",
           "fashion_label_randomisation", "feature_evolution", "generalisation_study", "gradient_comparison",
           "invariance_curves", "linear_probes", "occlusion_study", "pasted_objects", "pointing_game", "pointing_study",
           "random_weights", "robustness_curves", "run_checks", "sanity_checks", "spearman", "split_pictures", "ssim"]
