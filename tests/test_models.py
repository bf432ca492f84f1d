"""Tests for hpsearch.models: U-Net shapes and parameter counts, CBAM maths, registry errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.errors import ConfigError
from hpsearch.models import (
    CBAM,
    ChannelAttention,
    ConvBlock,
    SpatialAttention,
    UNet,
    create_attention,
    create_model,
    model_names,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **kwargs: object) -> nn.Module:
    # Shapes only: the 31M-parameter defaults are counted without allocating or initialising weights.
    with torch.device("meta"):
        return create_model(name, **kwargs)


@pytest.mark.parametrize("name", ["unet", "cbam_unet"])
@pytest.mark.parametrize("size", [(32, 32), (50, 70), (17, 9)])
def test_output_shape_tiny(name: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_model(name, base_width=4, depth=2)
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 1, *size)


def test_output_shape_deeper_non_divisible_with_decoder_attention() -> None:
    torch.manual_seed(0)
    model = create_model("cbam_unet", base_width=4, depth=3, attention_decoder=True, in_channels=1)
    assert model(torch.randn(1, 1, 50, 70)).shape == (1, 1, 50, 70)


def test_out_channels_option() -> None:
    model = create_model("unet", base_width=4, depth=1, out_channels=3)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)


@pytest.mark.parametrize("name", ["unet", "cbam_unet"])
def test_returns_raw_logits(name: str) -> None:
    model = create_model(name, base_width=4, depth=2)
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())
    # With a zero head and bias -3 the output must be exactly -3: nothing follows the 1x1 head conv.
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(-3.0)
    out = model(torch.randn(2, 3, 20, 24))
    assert torch.equal(out, torch.full_like(out, -3.0))


def test_random_init_logits_leave_unit_interval() -> None:
    torch.manual_seed(0)
    out = create_model("unet", base_width=4, depth=2)(torch.randn(2, 3, 32, 32))
    assert (out < 0).any() or (out > 1).any()


def test_param_count_unet_default_pinned() -> None:
    count = n_params(meta_model("unet"))
    assert count == 31_037_633
    assert round(count / 1e6, 1) == 31.0
    assert round(count / 1e6, 2) == 31.04  # the reproduced report's figure


def test_param_count_cbam_unet_default_pinned() -> None:
    assert n_params(meta_model("cbam_unet")) == 31_215_344
    assert n_params(meta_model("cbam_unet", attention_decoder=True)) == 31_260_796


def test_param_count_tiny_by_hand() -> None:
    # depth=1, base_width=2, 3 -> 1 channels, counted by hand:
    # enc0 block 3->2: conv (3*2*9+2) + conv (2*2*9+2) + BN (2+2) = 56 + 38 + 4 = 98
    # enc1 block 2->4: 76 + 148 + 8 = 232
    # up ConvTranspose 4->2, k=2: 4*2*4+2 = 34; dec block 4->2: 74 + 38 + 4 = 116
    # head 1x1 2->1: 2 + 1 = 3
    assert n_params(create_model("unet", base_width=2, depth=1)) == 98 + 232 + 34 + 116 + 3


def test_conv_block_order() -> None:
    block = ConvBlock(3, 8)
    assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
    assert all(m.bias is not None for m in block if isinstance(m, nn.Conv2d))


def test_cbam_placement() -> None:
    enc_only = create_model("cbam_unet", base_width=4, depth=3)
    both = create_model("cbam_unet", base_width=4, depth=3, attention_decoder=True)
    assert sum(isinstance(m, CBAM) for m in enc_only.modules()) == 4  # incl. bottleneck
    assert sum(isinstance(m, CBAM) for m in both.modules()) == 4 + 3
    assert n_params(both) > n_params(enc_only) > n_params(create_model("unet", base_width=4, depth=3))


def test_channel_hidden_width() -> None:
    assert ChannelAttention(64, reduction=16, min_hidden=8).hidden == 8  # 64 // 16 = 4 < 8
    assert ChannelAttention(256, reduction=16, min_hidden=8).hidden == 16
    assert ChannelAttention(64, reduction=16, min_hidden=2).hidden == 4


def test_cbam_weight_shapes_and_range() -> None:
    torch.manual_seed(0)
    cbam = CBAM(16, reduction=4)
    x = torch.randn(2, 16, 9, 11) * 3
    mc = cbam.channel_weights(x)
    ms = cbam.spatial_weights(x)
    assert mc.shape == (2, 16, 1, 1)
    assert ms.shape == (2, 1, 9, 11)
    for w in (mc, ms):
        assert (w > 0).all() and (w < 1).all()


def test_cbam_forward_composes_channel_then_spatial() -> None:
    torch.manual_seed(0)
    cbam = CBAM(8, reduction=2, min_hidden=1)
    x = torch.randn(2, 8, 6, 5)
    refined = x * cbam.channel_weights(x)
    torch.testing.assert_close(cbam.spatial_weights(x), cbam.spatial.weights(refined))
    torch.testing.assert_close(cbam(x), refined * cbam.spatial_weights(x))


def test_channel_attention_uses_one_shared_mlp_on_avg_and_max() -> None:
    torch.manual_seed(0)
    ca = ChannelAttention(6, reduction=2, min_hidden=1)
    convs = [m for m in ca.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and not any(isinstance(m, nn.BatchNorm2d) for m in ca.modules())
    x = torch.randn(3, 6, 4, 7)
    avg = x.mean(dim=(2, 3), keepdim=True)
    mx = x.amax(dim=(2, 3), keepdim=True)

    def mlp(v: torch.Tensor) -> torch.Tensor:
        h = F.relu(F.conv2d(v, convs[0].weight, convs[0].bias))
        return F.conv2d(h, convs[1].weight, convs[1].bias)

    torch.testing.assert_close(ca.weights(x), torch.sigmoid(mlp(avg) + mlp(mx)))


def test_spatial_attention_uses_channel_mean_and_max() -> None:
    torch.manual_seed(0)
    sa = SpatialAttention()
    assert sa.conv.in_channels == 2 and sa.conv.kernel_size == (7, 7) and sa.conv.padding == (3, 3)
    # Hand-built input: channel 0 carries a spike, so mean and max over channels differ clearly.
    x = torch.zeros(1, 4, 8, 8)
    x[0, 0, 2, 3] = 10.0
    x[0, 1] = torch.arange(64, dtype=torch.float32).reshape(8, 8) / 16
    x[0, 2] = -1.0
    w, b = sa.conv.weight, sa.conv.bias
    pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
    expected = torch.sigmoid(F.conv2d(pooled, w, b, padding=3))
    torch.testing.assert_close(sa.weights(x), expected)
    # The order [mean; max] matters: the swapped stack gives a different map.
    swapped = torch.sigmoid(F.conv2d(pooled.flip(1), w, b, padding=3))
    assert not torch.allclose(sa.weights(x), swapped)


def test_registry_miss_lists_names() -> None:
    assert model_names() == ["cbam_unet", "unet"]
    with pytest.raises(ConfigError, match="unknown model 'resnet'.*cbam_unet, unet"):
        create_model("resnet")
    with pytest.raises(ConfigError, match="unknown attention 'se'.*cbam"):
        create_attention("se", 8)
    with pytest.raises(ConfigError, match="unknown attention 'se'.*cbam"):
        UNet(attention="se")


def test_create_attention() -> None:
    att = create_attention("cbam", 32, reduction=8, min_hidden=2)
    assert isinstance(att, CBAM) and att.channel.hidden == 4
    with pytest.raises(ConfigError, match="ratio.*valid options: reduction, min_hidden, kernel_size"):
        create_attention("cbam", 32, ratio=8)


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("unet", {"widht": 8}, "widht.*valid options: in_channels, out_channels, base_width, depth"),
        ("unet", {"reduction": 8}, "reduction"),
        ("unet", {"depth": 0}, "depth must be an integer >= 1, got 0"),
        ("unet", {"base_width": 0}, "base_width must be an integer >= 1"),
        ("unet", {"depth": 2.5}, "depth must be an integer"),
        ("unet", {"depth": True}, "depth must be an integer"),
        ("cbam_unet", {"reduction": 0}, "reduction must be an integer >= 1"),
        ("cbam_unet", {"min_hidden": -1}, "min_hidden must be an integer >= 1"),
        ("cbam_unet", {"attention_decoder": "yes"}, "attention_decoder"),
    ],
)
def test_bad_kwargs_raise_config_error(name: str, kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        create_model(name, **kwargs)


def test_attention_decoder_without_attention() -> None:
    with pytest.raises(ConfigError, match="attention_decoder"):
        UNet(attention_decoder=True)


def test_input_size_limit() -> None:
    # eval(): in train mode BatchNorm rejects the single 1x1 bottleneck value of one 8x8 image.
    model = create_model("unet", base_width=2, depth=3).eval()
    assert model(torch.randn(1, 3, 8, 9)).shape == (1, 1, 8, 9)
    with pytest.raises(ValueError, match="smaller than 2\\*\\*depth"):
        model(torch.randn(1, 3, 7, 9))
