"""Token grids: layer outputs as feature maps, the default CAM layer, refusals of layers without a grid."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.attribution import GradCAM, LayerCAM, Occlusion, ScoreCAM
from convscope.attribution.layers import last_spatial_layer
from convscope.models import Model, Preprocess
from convscope.models.tokens import Grid, find_grid, on_grid

pytestmark = pytest.mark.usefixtures("one_thread")


class Attention(nn.Module):
    """Single-head self-attention with an inner per-head tensor, as in timm's ``Attention``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.k_norm = nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.qkv(x).unsqueeze(1).chunk(3, -1)  # [B,1 head,N,d]
        k = self.k_norm(k * 1.0)
        return self.proj(((q @ k.transpose(-1, -2)) / 2).softmax(-1) @ v)[:, 0]


class TinyViT(nn.Module):
    """8×8 patches of a 32×32 picture → 16 tokens + a class token → one attention block → head on the class token.

    With ``nchw`` the same computation keeps the patch embedding as a feature map ``[B,C,4,4]``
    at ``patch_embed``: the oracle for the token-grid reshape.
    """

    num_prefix_tokens = 1

    def __init__(self, dim: int = 6, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch_embed = nn.Conv2d(3, dim, 8, stride=8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.tokens = nn.Identity()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        maps = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), maps.flatten(2).transpose(1, 2)], 1)
        tokens = self.tokens(tokens)
        tokens = tokens + self.attn(self.norm1(tokens))
        return self.head(self.norm(tokens)[:, 0])


def plain(net: nn.Module) -> Model:
    return Model(net.eval(), preprocess=Preprocess(resize=None, crop=None, mean=(0, 0, 0), std=(1, 1, 1)))


def test_find_grid_reads_each_layout_and_refuses_what_has_no_grid():
    assert find_grid(torch.zeros(2, 768, 7, 7), 2, (224, 224)) == Grid("nchw", (7, 7))
    assert find_grid(torch.zeros(2, 7, 7, 768), 2, (224, 224)) == Grid("nhwc", (7, 7))
    assert find_grid(torch.zeros(2, 197, 384), 2, (224, 224), prefix=1) == Grid("tokens", (14, 14), 1)
    assert find_grid(torch.zeros(2, 49, 768), 2, (224, 224)) == Grid("tokens", (7, 7), 0)
    assert find_grid(torch.zeros(1, 8, 15, 15), 1, (225, 225)) == Grid("nchw", (15, 15))
    assert find_grid(torch.zeros(1, 8, 8, 7), 1, (15, 15)) == Grid("nchw", (8, 7))  # 15/2 rounded up, and down
    heads = find_grid(torch.zeros(1, 6, 197, 64), 1, (224, 224), prefix=1)
    assert isinstance(heads, str) and "attention heads" in heads
    assert "no spatial positions" in find_grid(torch.zeros(1, 1000), 1, (224, 224))
    assert "1×1" in find_grid(torch.zeros(1, 768, 1, 1), 1, (224, 224))
    assert "batch" in find_grid(torch.zeros(64, 49, 96), 1, (224, 224))  # Swin's windows stacked on the batch
    assert "tokens" in find_grid(torch.zeros(1, 198, 384), 1, (224, 224), prefix=1)
    assert on_grid(56, 56, (224, 224)) and not on_grid(197, 64, (224, 224)) and not on_grid(197, 197, (224, 224))


def test_token_maps_put_each_token_at_its_patch():
    tokens = torch.arange(1 + 6 * 4, dtype=torch.float32).view(1, 25, 1).expand(1, 25, 3)  # value = token index
    maps = Grid("tokens", (6, 4), prefix=1).maps(tokens)
    assert maps.shape == (1, 3, 6, 4)
    row, col = 4, 3
    assert maps[0, 2, row, col] == 1 + row * 4 + col  # row-major after the class token
    channels_last = torch.randn(2, 5, 7, 3)
    assert torch.equal(Grid("nhwc", (5, 7)).maps(channels_last), channels_last.permute(0, 3, 1, 2))


def test_grad_cam_on_tokens_equals_grad_cam_on_the_same_feature_map():
    model = plain(TinyViT())
    x = torch.randn(2, 3, 32, 32)
    on_tokens = GradCAM(model, "tokens")(x, [0, 2])
    on_maps = GradCAM(model, "patch_embed")(x, [0, 2])  # the same values before they become tokens
    assert on_tokens.shape == (2, 1, 4, 4)
    torch.testing.assert_close(on_tokens, on_maps)
    torch.testing.assert_close(LayerCAM(model, "tokens")(x, 1), LayerCAM(model, "patch_embed")(x, 1))
    own = GradCAM(model, "tokens", reshape=lambda t: t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, 4, 4))
    torch.testing.assert_close(own(x, [0, 2]), on_maps)
    torch.testing.assert_close(ScoreCAM(model, "tokens")(x, 1), ScoreCAM(model, "patch_embed")(x, 1))


def test_default_layer_is_the_input_of_the_last_attention_and_others_are_refused_with_alternatives():
    model = plain(TinyViT())
    x = torch.randn(1, 3, 32, 32)
    # after the attention only the class token reaches the head: norm1 is the last layer whose grid matters
    assert last_spatial_layer(model, x) == "norm1"
    with pytest.raises(ValueError, match=r"attn.k_norm' has no spatial grid.*attention heads.*would work: .*norm1"):
        GradCAM(model, "attn.k_norm")(x, 0)
    with pytest.raises(ValueError, match=r"'head' has no spatial grid.*no spatial positions"):
        GradCAM(model, "head")(x, 0)
    with pytest.raises(ValueError, match=r"reshape= must turn .* into feature maps \[B,C,h,w\]"):
        GradCAM(model, "norm1", reshape=lambda t: t)(x, 0)
    with pytest.raises(ValueError, match="reshape= needs layer="):
        GradCAM(model, reshape=lambda t: t)
    with pytest.raises(TypeError, match="takes one layer, got 2"):
        GradCAM(model, ["norm1", "tokens"])


def test_occlusion_follows_a_token_layer_on_its_grid():
    model = plain(TinyViT())
    x = torch.randn(1, 3, 32, 32)
    found = Occlusion(model, size=8, stride=8).maps(x, 0, layer="tokens")
    reference = Occlusion(model, size=8, stride=8).maps(x, 0, layer="patch_embed")
    assert found.feature.shape == (1, 4, 4)
    torch.testing.assert_close(found.feature, reference.feature)
    assert torch.equal(found.channel, reference.channel)


def test_scan_refuses_token_layers_and_top_patches_fall_back_to_whole_pictures(tmp_path):
    from convscope.data import TensorPictures
    from convscope.scan import Scan

    model = Model(TinyViT().eval(), preprocess=Preprocess(resize=None, crop=32, mean=(0, 0, 0), std=(1, 1, 1)))
    data = TensorPictures(torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"layer 'norm1': its output \[1, 17, 6\] holds tokens .* on a 4×4 grid"):
        Scan(model, ["norm1"], k=2).run(data, tmp_path / "tokens", progress=False)
    result = Scan(model, ["head"], k=2).run(data, tmp_path / "head", progress=False)  # reached through attention
    with pytest.raises(ValueError, match="top patches show the whole pictures"):
        result.receptive_field("head")
    patches = result.top_patches("head", channels=[0, 1])
    assert patches.field.whole_input and tuple(patches.boxes[0, 0].tolist()) == (0, 0, 32, 32)


def test_channel_targets_refuse_token_layers():
    from convscope.attribution import Saliency
    from convscope.targets import Channel

    with pytest.raises(ValueError, match=r"layer 'norm1' gives \[1, 17, 6\] \(tokens\?\)"):
        Saliency(plain(TinyViT()))(torch.randn(1, 3, 32, 32), Channel("norm1", 2))
