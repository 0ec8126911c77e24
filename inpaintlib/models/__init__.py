"""The two inpainting networks of the report: the Context Encoder (§3.1) and the PConv U-Net (§3.2),
and their architecture tables (:mod:`inpaintlib.models.summary`)."""

from __future__ import annotations

from inpaintlib.models.context_encoder import ContextDiscriminator, ContextEncoder
from inpaintlib.models.head import FullResolutionHead, freeze_all_but_head
from inpaintlib.models.pconv_unet import PConvUNet, default_layers, freeze_encoder_batchnorm
from inpaintlib.models.summary import LayerTable, architecture_table, count_parameters, layer_table

__all__ = [
    "ContextEncoder",
    "ContextDiscriminator",
    "PConvUNet",
    "freeze_encoder_batchnorm",
    "FullResolutionHead",
    "freeze_all_but_head",
    "default_layers",
    "layer_table",
    "count_parameters",
    "LayerTable",
    "architecture_table",
]
