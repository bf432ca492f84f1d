"""Segmentation models: the U-Net, its CBAM variant and the ``MODELS`` / ``ATTENTIONS`` registries."""

from hpsearch.models.attention import (
    ATTENTIONS,
    CBAM,
    ChannelAttention,
    SpatialAttention,
    attention_names,
    create_attention,
)
from hpsearch.models.blocks import ConvBlock, UpBlock
from hpsearch.models.unet import MODELS, UNet, cbam_unet, create_model, model_names, unet

__all__ = [
    "ATTENTIONS",
    "CBAM",
    "MODELS",
    "ChannelAttention",
    "ConvBlock",
    "SpatialAttention",
    "UNet",
    "UpBlock",
    "attention_names",
    "cbam_unet",
    "create_attention",
    "create_model",
    "model_names",
    "unet",
]
