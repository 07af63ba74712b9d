"""Synthesis: images the network makes, all on one optimise-the-input loop.

The loop (:func:`optimise`) combines an objective (:mod:`.objectives`, composable with
+ − ×), a parameterisation (:mod:`.params`), robustness transforms (:mod:`.transforms`)
and regularisers (:mod:`.regularisers`). Each technique is that loop with a recipe:
class models, feature visualisation, multifaceted views, feature inversion, DeepDream,
adversarial images, Gram textures and style transfer; Efros–Leung texture synthesis and
fast style transfer's network training complete the set.
"""

from convscope.synthesis import objectives, params, regularisers, transforms
from convscope.synthesis.adversarial import AttackResult, fgsm, fool, pgd
from convscope.synthesis.class_model import ClassModelResult, class_model
from convscope.synthesis.dream import DreamResult, dream
from convscope.synthesis.efros_leung import EfrosLeungResult, efros_leung
from convscope.synthesis.facets import FacetResult, crop_pool, multifaceted, rank_pool
from convscope.synthesis.fast_style import FastStyle, TransformNet, train_fast_style
from convscope.synthesis.feature_vis import FeatureResult, visualise_features
from convscope.synthesis.inversion import InversionResult, invert
from convscope.synthesis.layer_choice import StyleLayers, style_layers
from convscope.synthesis.loop import SynthesisResult, evaluate, optimise
from convscope.synthesis.matching import feature_distance, gram_distance, gram_matrix, layer_features, smooth
from convscope.synthesis.objectives import Evaluation, Objective
from convscope.synthesis.style import StyleResult, style_transfer
from convscope.synthesis.texture import TextureResult, gram_texture, synthesise_texture

__all__ = ["AttackResult", "ClassModelResult", "DreamResult", "EfrosLeungResult", "Evaluation", "FacetResult",
           "FastStyle", "FeatureResult", "InversionResult", "Objective", "StyleLayers", "StyleResult",
           "SynthesisResult", "TextureResult", "TransformNet", "class_model", "crop_pool", "dream", "efros_leung",
           "evaluate", "feature_distance", "fgsm", "fool", "gram_distance", "gram_matrix", "gram_texture",
           "invert", "layer_features", "multifaceted", "objectives", "optimise", "params", "pgd", "rank_pool",
           "regularisers", "smooth", "style_layers", "style_transfer", "synthesise_texture", "train_fast_style",
           "transforms", "visualise_features"]
