"""The U-Net (MICCAI 2015) with optional attention, and the ``MODELS`` registry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hpsearch.errors import ConfigError
from hpsearch.models.attention import ATTENTIONS, _check_int
from hpsearch.models.blocks import ConvBlock, UpBlock
from hpsearch.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


class UNet(nn.Module):
    """Classic U-Net returning logits ``(N, out_channels, H, W)``; no sigmoid anywhere.

    Widths are ``base_width * 2**i`` for ``i = 0..depth`` (64, 128, 256, 512, 1024 at the defaults).
    With ``attention`` set (a name in ``ATTENTIONS``, e.g. ``"cbam"``) an attention module follows each
    encoder block including the bottleneck, and also each decoder block when ``attention_decoder``.
    Inputs of any size >= ``2**depth`` work, divisible or not.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_width: int = 64,
        depth: int = 4,
        attention: str | None = None,
        attention_decoder: bool = False,
        reduction: int = 16,
        min_hidden: int = 8,
    ) -> None:
        super().__init__()
        in_channels = _check_int("in_channels", in_channels, 1)
        out_channels = _check_int("out_channels", out_channels, 1)
        base_width = _check_int("base_width", base_width, 1)
        depth = _check_int("depth", depth, 1)
        if not isinstance(attention_decoder, bool):
            raise ConfigError(f"attention_decoder must be true or false, got {attention_decoder!r}")
        if attention is None and attention_decoder:
            raise ConfigError("attention_decoder=True needs an attention type (e.g. attention='cbam')")
        # The registry entry itself, not ``create_attention``: its options are fixed here, and the caller's
        # own error wrapping (``create_model``) already names the model's valid options.
        make_attention = ATTENTIONS.get(attention) if attention is not None else None  # a miss lists names

        def attn(channels: int) -> nn.Module:
            if make_attention is None:
                return nn.Identity()
            return make_attention(channels, reduction=reduction, min_hidden=min_hidden)

        widths = [base_width * 2**i for i in range(depth + 1)]
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.attention = attention

        self.encoders = nn.ModuleList()
        self.encoder_attention = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(ConvBlock(prev, w))
            self.encoder_attention.append(attn(w))
            prev = w
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

        self.decoders = nn.ModuleList()
        self.decoder_attention = nn.ModuleList()
        for w_in, w_out in zip(reversed(widths[1:]), reversed(widths[:-1]), strict=True):
            self.decoders.append(UpBlock(w_in, w_out))
            self.decoder_attention.append(attn(w_out) if attention_decoder else nn.Identity())
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits with the input's spatial size."""
        if min(x.shape[-2:]) < 2**self.depth:
            # Below this the deepest max-pool yields an empty map and torch fails with a cryptic message.
            raise ValueError(f"input size {tuple(x.shape[-2:])} is smaller than 2**depth = {2**self.depth}")
        skips: list[torch.Tensor] = []
        for i, (block, attn) in enumerate(zip(self.encoders, self.encoder_attention, strict=True)):
            if i:
                x = self.pool(x)
            x = attn(block(x))
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself, not a skip
        for up, attn in zip(self.decoders, self.decoder_attention, strict=True):
            x = attn(up(x, skips.pop()))
        return self.head(x)


def unet(*, in_channels: int = 3, out_channels: int = 1, base_width: int = 64, depth: int = 4) -> UNet:
    """The plain U-Net (31.04M parameters at the defaults)."""
    return UNet(in_channels=in_channels, out_channels=out_channels, base_width=base_width, depth=depth)


def cbam_unet(
    *,
    in_channels: int = 3,
    out_channels: int = 1,
    base_width: int = 64,
    depth: int = 4,
    attention_decoder: bool = False,
    reduction: int = 16,
    min_hidden: int = 8,
) -> UNet:
    """U-Net with CBAM (ECCV 2018) after each encoder block (and decoder block if asked)."""
    return UNet(
        in_channels=in_channels,
        out_channels=out_channels,
        base_width=base_width,
        depth=depth,
        attention="cbam",
        attention_decoder=attention_decoder,
        reduction=reduction,
        min_hidden=min_hidden,
    )


MODELS.add("unet", unet)
MODELS.add("cbam_unet", cbam_unet)


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return MODELS.names()


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs``.

    An unknown name raises ``ConfigError`` listing the registered models; an unknown option or an invalid
    value raises ``ConfigError`` naming the option and the valid ones.
    """
    return MODELS.create(name, **kwargs)
