"""The two inpainting networks of the report: the Context Encoder (§3.1) and the PConv U-Net (§3.2)."""

from __future__ import annotations

from torch import nn

from inpaintlib.models.context_encoder import ContextDiscriminator, ContextEncoder
from inpaintlib.models.pconv_unet import PConvUNet, default_layers, freeze_encoder_batchnorm

__all__ = [
    "ContextEncoder",
    "ContextDiscriminator",
    "PConvUNet",
    "freeze_encoder_batchnorm",
    "default_layers",
    "layer_table",
    "count_parameters",
]


def layer_table(model: nn.Module, image_size: int | None = None) -> list[dict]:
    """Architecture table of a model, one dict per block (for the book's figures and tables).

    Each row has ``name``, ``layer`` (what the block does), ``kernel``, ``stride``,
    ``in_channels``, ``out_channels``, ``output_shape`` (C, H, W) and ``params``.  The Context
    Encoder and its discriminator have fixed input sizes (128 and 64 px); for the PConv
    U-Net, ``image_size`` overrides the model's own.
    """
    if isinstance(model, PConvUNet):
        return model.layer_table(image_size)
    if isinstance(model, (ContextEncoder, ContextDiscriminator)):
        return model.layer_table()
    expected = "a ContextEncoder, ContextDiscriminator or PConvUNet"
    raise ValueError(f"layer_table expects {expected}, got {type(model).__name__}")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN scales and shifts included; running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
