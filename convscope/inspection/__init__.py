"""Weights and activations: filters, activation maps, per-layer statistics, predictions."""

from convscope.inspection.activations import ActivationMaps, activation_maps, activation_maps_batch
from convscope.inspection.filters import Filters, filters
from convscope.inspection.predictions import Predictions, predict
from convscope.inspection.statistics import LayerStatistics, layer_statistics

__all__ = ["ActivationMaps", "Filters", "LayerStatistics", "Predictions", "activation_maps",
           "activation_maps_batch", "filters", "layer_statistics", "predict"]
