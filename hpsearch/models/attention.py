"""Attention modules for the U-Net: CBAM (Woo et al., ECCV 2018) and the ``ATTENTIONS`` registry.

Every module here is stateless apart from its parameters: the attention maps are exposed through
``channel_weights(x)`` / ``spatial_weights(x)`` methods instead of being cached during ``forward``, so
tests and visualisations can read them without a debug flag and a compiled or fused variant can be
checked against this plain implementation on the same inputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from numbers import Integral

import torch
from torch import nn

from hpsearch.errors import ConfigError
from hpsearch.registry import Registry

ATTENTIONS: Registry[Callable[..., nn.Module]] = Registry("attention")


def _check_int(name: str, value: object, minimum: int) -> int:
    # bool is an int subclass; "reduction=True" is a config mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``Mc = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

    One MLP (1x1 convs, ReLU between, no BatchNorm) is shared by both pooled descriptors, as in the paper.
    Its hidden width is ``max(channels // reduction, min_hidden)`` so that narrow layers keep a usable
    bottleneck instead of collapsing to one or zero units.
    """

    def __init__(self, channels: int, *, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        channels = _check_int("channels", channels, 1)
        reduction = _check_int("reduction", reduction, 1)
        min_hidden = _check_int("min_hidden", min_hidden, 1)
        self.channels = channels
        self.hidden = max(channels // reduction, min_hidden)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, self.hidden, kernel_size=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.hidden, channels, kernel_size=1, bias=True),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The channel map ``Mc`` of shape (N, C, 1, 1), values in (0, 1)."""
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * Mc``."""
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``Ms = sigmoid(conv7x7([mean_c(x); max_c(x)]))``.

    The conv maps the 2 pooled maps (channel-wise mean first, then max, as in the paper) to 1 map with
    padding ``kernel_size // 2``. No BatchNorm is used: the paper's formulation has none, and the
    conv's own bias is the only shift a single-channel map before a sigmoid needs.
    """

    def __init__(self, *, kernel_size: int = 7) -> None:
        super().__init__()
        kernel_size = _check_int("kernel_size", kernel_size, 1)
        if kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd to keep the spatial size, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=True)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial map ``Ms`` of shape (N, 1, H, W), values in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * Ms``."""
        return x * self.weights(x)


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018): channel then spatial attention."""

    def __init__(
        self, channels: int, *, reduction: int = 16, min_hidden: int = 8, kernel_size: int = 7
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction=reduction, min_hidden=min_hidden)
        self.spatial = SpatialAttention(kernel_size=kernel_size)

    def channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``Mc(x)``, shape (N, C, 1, 1)."""
        return self.channel.weights(x)

    def spatial_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``Ms`` as used in ``forward``, i.e. on the channel-refined ``x * Mc(x)``; shape (N, 1, H, W)."""
        return self.spatial.weights(self.channel(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x' = x * Mc(x)``, then ``x' * Ms(x')``."""
        return self.spatial(self.channel(x))


ATTENTIONS.add("cbam", CBAM)


def _accepted_kwargs(factory: Callable[..., object]) -> list[str]:
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def attention_names() -> list[str]:
    """Registered attention names, sorted."""
    return ATTENTIONS.names()


def create_attention(name: str, channels: int, **kwargs: object) -> nn.Module:
    """Build the attention module ``name`` for a feature map with ``channels`` channels.

    Unknown names and unknown or invalid options raise ``ConfigError`` naming the valid choices.
    """
    factory = ATTENTIONS.get(name)
    valid = [k for k in _accepted_kwargs(factory) if k != "channels"]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        listed = ", ".join(valid)
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for attention '{name}'; valid options: {listed}"
        )
    return factory(channels, **kwargs)
