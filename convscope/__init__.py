"""convscope: see inside convolutional networks."""

from convscope.analysis import (
    data_randomisation,
    faithfulness_study,
    feature_evolution,
    invariance_curves,
    linear_probes,
    run_checks,
    sanity_checks,
)
from convscope.attribution import (
    CAM,
    KPCACAM,
    AblationCAM,
    Deconvnet,
    DeepLift,
    DeepLiftShap,
    EigenCAM,
    EigenGradCAM,
    FeatureAblation,
    FinerCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    GradientShap,
    GuidedBackprop,
    GuidedGradCAM,
    HiResCAM,
    InputXGradient,
    IntegratedGradients,
    InternalInfluence,
    KernelShap,
    LayerCAM,
    LayerConductance,
    LayerDeepLift,
    LayerGradientXActivation,
    Lime,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ScoreCAM,
    ShapleyCAM,
    ShapleyValueSampling,
    SmoothGrad,
    XGradCAM,
    compare,
    explain,
    factorise,
)
from convscope.backward_rules import backward_rules
from convscope.gradients import GradientPass, gradient_pass
from convscope.hooks import capture, inspection_mode, preserved
from convscope.images import load_image, load_images, load_sample, sample_names
from convscope.inspection import activation_maps, filters, layer_statistics, predict
from convscope.models import DEFAULT_MODEL, Model, Preprocess, load_model
from convscope.render import Picture
from convscope.scan import Scan, ScanResult
from convscope.synthesis import (
    class_model,
    dream,
    efros_leung,
    fgsm,
    fool,
    gram_texture,
    invert,
    multifaceted,
    optimise,
    pgd,
    style_transfer,
    train_fast_style,
    visualise_features,
)
from convscope.targets import BoxScore, Channel, ClassProbability, ClassScore, Custom, Neuron, Region, TopClass

__version__ = "0.1.0"

__all__ = ["CAM", "DEFAULT_MODEL", "Deconvnet", "GradCAM", "GradCAMPlusPlus", "GuidedBackprop", "GuidedGradCAM",
           "InputXGradient", "IntegratedGradients", "LayerCAM", "Occlusion", "Saliency", "ScoreCAM", "SmoothGrad",
           "backward_rules", "compare", "explain", "BoxScore", "Region", "Channel", "ClassProbability", "ClassScore",
           "Custom", "GradientPass", "Model", "Neuron", "Picture", "Preprocess", "TopClass", "activation_maps",
           "capture", "filters", "gradient_pass", "inspection_mode", "layer_statistics", "load_image", "load_images",
           "load_model", "load_sample", "predict", "preserved", "sample_names", "Scan", "ScanResult", "class_model",
           "dream", "efros_leung", "fgsm", "fool", "gram_texture", "invert", "multifaceted", "optimise", "pgd",
           "style_transfer", "train_fast_style", "visualise_features", "data_randomisation", "faithfulness_study",
           "feature_evolution", "invariance_curves", "linear_probes", "run_checks", "sanity_checks", "EigenCAM",
           "EigenGradCAM", "GradCAMElementWise", "HiResCAM", "XGradCAM", "AblationCAM", "NoiseTunnel", "FullGrad",
           "DeepLift", "DeepLiftShap", "GradientShap", "FeatureAblation", "ShapleyValueSampling",
           "KPCACAM", "ShapleyCAM", "FinerCAM", "factorise", "Lime", "KernelShap", "LayerConductance",
           "InternalInfluence", "LayerGradientXActivation", "LayerDeepLift"]
