"""Channel and neuron targets refuse channels-last maps instead of reading a spatial axis as channels."""

import pytest
import timm
import torch

import convscope as cs


@pytest.fixture(scope="module")
def convnext():
    torch.manual_seed(0)  # conv_mlp=False: LayerNorm and MLP run channels last, as in ConvNeXt-T
    return cs.Model(timm.create_model("convnext_atto", pretrained=False, conv_mlp=False).eval())


def test_channel_target_on_a_channels_last_layer_is_refused(convnext):
    inputs = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="channels-last"):
        cs.Saliency(convnext)(inputs, cs.Channel("stages.0.blocks.0.norm", 3))


def test_channel_target_on_a_channels_first_layer_reads_that_channel(convnext):
    inputs = torch.rand(1, 3, 64, 64)
    maps = cs.Saliency(convnext)(inputs, cs.Channel("stages.0", 3))
    assert maps.shape[-2:] == (64, 64) and maps.abs().sum() > 0
