"""Segmentation models: ``create_model(name, **kwargs)`` builds a registered model (U-Net, CBAM U-Net) that
returns logits, never probabilities; attention modules come from ``create_attention`` by name."""

from hpsearch.models.attention import (
    ATTENTIONS,
    CBAM,
    ChannelAttention,
    FusedCBAM,
    SpatialAttention,
    attention_names,
    create_attention,
    set_cbam_fused,
)
from hpsearch.models.blocks import ConvBlock, UpBlock
from hpsearch.models.unet import MODELS, UNet, cbam_unet, create_model, model_names, unet

__all__ = [
    "ATTENTIONS",
    "CBAM",
    "MODELS",
    "ChannelAttention",
    "ConvBlock",
    "FusedCBAM",
    "SpatialAttention",
    "UNet",
    "UpBlock",
    "attention_names",
    "cbam_unet",
    "create_attention",
    "create_model",
    "model_names",
    "set_cbam_fused",
    "unet",
]
