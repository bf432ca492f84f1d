"""Attention modules for the U-Net: CBAM (ECCV 2018) and the ``ATTENTIONS`` registry.

Every module here is stateless apart from its parameters: the attention maps are exposed through
``channel_weights(x)`` / ``spatial_weights(x)`` methods instead of being cached during ``forward``, so
tests and visualisations can read them without a debug flag and a compiled or fused variant can be
checked against this plain implementation on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

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
    """Convolutional Block Attention Module (ECCV 2018): channel then spatial attention."""

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


class _CBAMFunction(torch.autograd.Function):
    """CBAM forward plus a hand-written backward; the maths of ``CBAM`` with fewer full-size passes.

    Only the input ``x`` is kept for backward among the full-size (N, C, H, W) tensors; the channel-refined
    map is recomputed (one multiply) instead of being stored. The backward adds up the gradient terms of
    both gates and both poolings with fused ``addcmul`` ops where autograd builds and adds them one by one:
    13 instead of 18 ops on full-size tensors, about 35% fewer bytes read and written (counted per aten op;
    ``benchmarks/run.py`` prints the tally). Ties in a max share its gradient evenly, exactly like
    ``amax``'s backward. Inner ops run under the caller's autocast, and the backward uses the dtypes that
    the forward actually used, so mixed precision behaves like the plain module.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
        wc: torch.Tensor,
        bc: torch.Tensor,
    ) -> torch.Tensor:
        n, c = x.shape[:2]
        pad = wc.shape[-1] // 2
        # [avg; max] stacked on the batch axis: one pass of the shared MLP serves both descriptors.
        desc = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=0)
        hpre = F.linear(desc, w1.flatten(1), b1)
        hidden = F.relu(hpre)
        z2 = F.linear(hidden, w2.flatten(1), b2)
        mc = torch.sigmoid(z2[:n] + z2[n:]).to(x.dtype)
        refined = x * mc.view(n, c, 1, 1)
        pooled = torch.cat([refined.mean(dim=1, keepdim=True), refined.amax(dim=1, keepdim=True)], dim=1)
        ms = torch.sigmoid(F.conv2d(pooled, wc, bc, padding=pad))
        ctx.save_for_backward(x, mc, ms, pooled, desc, hpre, hidden, w1, w2, wc)
        ctx.pad = pad
        return refined.mul_(ms.to(refined.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, mc, ms, pooled, desc, hpre, hidden, w1, w2, wc = ctx.saved_tensors
        n, c, h, w = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            grad = grad.to(x.dtype)
            mc4 = mc.view(n, c, 1, 1)
            refined = x * mc4  # bit-identical to the forward's product
            # Spatial gate: out = refined * ms, ms = sigmoid(conv(pooled)).
            gms = (grad * refined).sum(dim=1, keepdim=True)
            gq = (gms * ms * (1 - ms)).to(pooled.dtype)
            gpooled, gwc, gbc = torch.ops.aten.convolution_backward(
                gq,
                pooled,
                wc.to(pooled.dtype),
                [wc.shape[0]],
                [1, 1],
                [ctx.pad, ctx.pad],
                [1, 1],
                False,
                [0, 0],
                1,
                [True, True, True],
            )
            gpooled = gpooled.to(x.dtype)
            # d/d refined: the gate, the channel mean, and the channel max (ties share evenly).
            gref = torch.addcmul(gpooled[:, :1] / c, grad, ms.to(x.dtype))
            tie = refined == pooled[:, 1:]
            gref.addcmul_(tie, gpooled[:, 1:] / tie.sum(dim=1, keepdim=True))
            # Channel gate: refined = x * mc, mc = sigmoid(mlp(avg) + mlp(max)).
            gmc = (gref * x).sum(dim=(2, 3))
            gz = (gmc * mc * (1 - mc)).to(hidden.dtype)
            gz2 = torch.cat([gz, gz], dim=0)
            gw2 = gz2.t() @ hidden
            ghpre = (gz2 @ w2.flatten(1).to(hidden.dtype)) * (hpre > 0)
            gw1 = ghpre.t() @ desc.to(ghpre.dtype)
            gdesc = (ghpre @ w1.flatten(1).to(ghpre.dtype)).to(x.dtype)
            gavg, gmax = gdesc[:n].view(n, c, 1, 1), gdesc[n:].view(n, c, 1, 1)
            # Through the gate and the spatial mean of x, then the spatial max (ties share evenly).
            gx = torch.addcmul(gavg / (h * w), gref, mc4)
            tie_hw = x == desc[n:].view(n, c, 1, 1).to(x.dtype)
            gx.addcmul_(tie_hw, gmax / tie_hw.sum(dim=(2, 3), keepdim=True))
        return (
            gx,
            gw1.view_as(w1).to(w1.dtype),
            ghpre.sum(0).to(w1.dtype),
            gw2.view_as(w2).to(w2.dtype),
            gz2.sum(0).to(w2.dtype),
            gwc.to(wc.dtype),
            gbc.to(wc.dtype),
        )


class FusedCBAM(CBAM):
    """``CBAM`` with the same parameters, state-dict keys and maths, restructured for fewer kernels.

    Three changes against the plain module, none of which alters the result beyond float rounding:

    - the shared MLP runs once on both pooled descriptors stacked as a (2N, C) matrix, i.e. two GEMMs,
      instead of twice as 1x1 convolutions on (N, C, 1, 1) maps (four cuDNN calls forward, more backward);
    - the output is written into the channel-refined map in place, and only the input is kept for the
      backward pass (the refined map is recomputed there), which saves one full-size activation per module;
    - the backward is hand-written (``_CBAMFunction``): it adds up the gradients of both gates and both
      poolings with fused ops, moving about a third fewer bytes than autograd's chain (e.g. for ``amax``'s
      tie-splitting rule).

    ``tests/test_cbam_fused.py`` checks the output and every gradient against ``CBAM``. Second-order
    gradients are not supported (nothing in this project uses them).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x' = x * Mc(x)``, then ``x' * Ms(x')``, as ``CBAM.forward``."""
        fc1, fc2, conv = self.channel.mlp[0], self.channel.mlp[2], self.spatial.conv
        return _CBAMFunction.apply(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias, conv.weight, conv.bias)


def cbam(
    channels: int, *, reduction: int = 16, min_hidden: int = 8, kernel_size: int = 7, fused: bool = True
) -> CBAM:
    """The registered "cbam" attention: ``FusedCBAM`` by default, the plain ``CBAM`` with ``fused=False``.

    Both have identical parameters and state-dict keys, so checkpoints load into either.
    """
    if not isinstance(fused, bool):
        raise ConfigError(f"fused must be true or false, got {fused!r}")
    cls = FusedCBAM if fused else CBAM
    return cls(channels, reduction=reduction, min_hidden=min_hidden, kernel_size=kernel_size)


ATTENTIONS.add("cbam", cbam)


def set_cbam_fused(model: nn.Module, fused: bool) -> nn.Module:
    """Switch every CBAM in ``model`` to the fused (``True``) or the plain implementation, in place.

    Both classes hold the same parameters, so this only changes which forward/backward runs; it is how
    benchmarks and tests compare the two on one set of weights. Returns ``model``.
    """
    for module in model.modules():
        if isinstance(module, CBAM):
            module.__class__ = FusedCBAM if fused else CBAM
    return model


def attention_names() -> list[str]:
    """Registered attention names, sorted."""
    return ATTENTIONS.names()


def create_attention(name: str, channels: int, **kwargs: object) -> nn.Module:
    """Build the attention module ``name`` for a feature map with ``channels`` channels.

    Unknown names and unknown or invalid options raise ``ConfigError`` naming the valid choices.
    """
    return ATTENTIONS.create(name, channels, **kwargs)
