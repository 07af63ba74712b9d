"""Models: loading, preprocessing, class names and layers."""

from convscope.models.layers import describe_layers, get_layer, layer_names
from convscope.models.loading import DEFAULT_MODEL, load_model, read_state_dict
from convscope.models.model import Model, as_model
from convscope.models.preprocessing import Preprocess

__all__ = ["DEFAULT_MODEL", "Model", "Preprocess", "as_model", "describe_layers", "get_layer", "layer_names",
           "load_model", "read_state_dict"]
