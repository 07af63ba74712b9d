"""Every attribution method by name."""

from convscope.attribution.ablation_cam import AblationCAM
from convscope.attribution.base import Attribution
from convscope.attribution.cam import CAM
from convscope.attribution.deconvnet import Deconvnet
from convscope.attribution.deep_lift import DeepLift
from convscope.attribution.deep_lift_shap import DeepLiftShap
from convscope.attribution.eigen_cam import EigenCAM
from convscope.attribution.eigen_grad_cam import EigenGradCAM
from convscope.attribution.feature_ablation import FeatureAblation
from convscope.attribution.finer_cam import FinerCAM
from convscope.attribution.full_grad import FullGrad
from convscope.attribution.grad_cam import GradCAM
from convscope.attribution.grad_cam_element_wise import GradCAMElementWise
from convscope.attribution.grad_cam_plus_plus import GradCAMPlusPlus
from convscope.attribution.gradient_shap import GradientShap
from convscope.attribution.guided_backprop import GuidedBackprop
from convscope.attribution.guided_grad_cam import GuidedGradCAM
from convscope.attribution.hires_cam import HiResCAM
from convscope.attribution.input_x_gradient import InputXGradient
from convscope.attribution.integrated_gradients import IntegratedGradients
from convscope.attribution.internal_influence import InternalInfluence
from convscope.attribution.kernel_shap import KernelShap
from convscope.attribution.kpca_cam import KPCACAM
from convscope.attribution.layer_cam import LayerCAM
from convscope.attribution.layer_conductance import LayerConductance
from convscope.attribution.layer_deep_lift import LayerDeepLift
from convscope.attribution.layer_gradient_x_activation import LayerGradientXActivation
from convscope.attribution.lime import Lime
from convscope.attribution.lrp import LRP
from convscope.attribution.noise_tunnel import NoiseTunnel
from convscope.attribution.occlusion import Occlusion
from convscope.attribution.saliency import Saliency
from convscope.attribution.score_cam import ScoreCAM
from convscope.attribution.shapley_cam import ShapleyCAM
from convscope.attribution.shapley_value_sampling import ShapleyValueSampling
from convscope.attribution.smooth_grad import SmoothGrad
from convscope.attribution.xgrad_cam import XGradCAM

METHODS: dict[str, type[Attribution]] = {m.name: m for m in (
    Occlusion, Saliency, Deconvnet, GuidedBackprop, CAM, GradCAM, GuidedGradCAM, SmoothGrad, IntegratedGradients,
    GradCAMPlusPlus, LayerCAM, ScoreCAM, InputXGradient, HiResCAM, GradCAMElementWise, XGradCAM, EigenCAM,
    EigenGradCAM, AblationCAM, FullGrad, NoiseTunnel, DeepLift, DeepLiftShap, GradientShap, FeatureAblation,
    ShapleyValueSampling, LRP, KPCACAM, ShapleyCAM, FinerCAM, Lime, KernelShap, LayerConductance,
    InternalInfluence, LayerGradientXActivation, LayerDeepLift)}
