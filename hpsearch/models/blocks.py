"""Building blocks of the classic U-Net (MICCAI 2015) as used by the reproduced report."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBlock(nn.Sequential):
    """conv3x3-ReLU-conv3x3-ReLU-BatchNorm, in exactly that order.

    The report being reproduced puts a single BatchNorm at the *end* of each block (not after each conv)
    and keeps the conv biases, so the parameter count matches its 31.04M at the default widths.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=True),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(out_channels),
        )
        self.in_channels = in_channels
        self.out_channels = out_channels


class UpBlock(nn.Module):
    """ConvTranspose2d(k=2, s=2) halving the channels, concat with the skip, then a ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        # After the concat the block sees the upsampled map plus the same-width skip.
        self.block = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x``, match it to ``skip``'s size, concatenate (skip first) and convolve."""
        x = self.up(x)
        # Max-pooling floors odd sizes (e.g. 25 -> 12), so the 2x transposed conv can come out up to one
        # pixel short of the skip. Zero-padding bottom/right restores the skip's size without resampling
        # the features; the diff is never negative because 2 * floor(s / 2) <= s.
        dh = skip.shape[-2] - x.shape[-2]
        dw = skip.shape[-1] - x.shape[-1]
        if dh or dw:
            x = F.pad(x, (0, dw, 0, dh))
        return self.block(torch.cat([skip, x], dim=1))
